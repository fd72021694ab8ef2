// Tiny harness that runs an Argo CD health.lua the way Argo CD does (gopher-lua,
// Lua 5.1; see util/lua/lua.go): used by tests/unit/test_argocd_health.py.
module quantgate.local/tools/luahealth

go 1.26.0

require github.com/yuin/gopher-lua v1.1.2
