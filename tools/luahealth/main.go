// Command luahealth runs an Argo CD resource health script (health.lua) against
// objects, reproducing how Argo CD calls it (util/lua/lua.go): gopher-lua (Lua 5.1),
// a fresh state per call, a 1 s timeout, the object in the global `obj`, and only
// the package, base and table libraries unless -open-libs is given (argocd-cm's
// resource.customizations.useOpenLibs.<group>_<Kind>: "true").
//
// Usage: luahealth [-open-libs] health.lua < objects.json
// stdin is a JSON array of objects; stdout is a JSON array with one
// {"status": ..., "message": ...} or {"error": ...} per object.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Health statuses Argo CD accepts from a script (anything else is reported as Unknown).
var validStatus = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

type result struct {
	Status  *string `json:"status,omitempty"`
	Message *string `json:"message,omitempty"`
	Error   string  `json:"error,omitempty"`
}

func main() {
	openLibs := flag.Bool("open-libs", false, "open all standard libraries (useOpenLibs)")
	flag.Parse()
	if flag.NArg() != 1 {
		fmt.Fprintln(os.Stderr, "usage: luahealth [-open-libs] health.lua < objects.json")
		os.Exit(2)
	}
	script, err := os.ReadFile(flag.Arg(0))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	var objects []any
	if err := json.NewDecoder(os.Stdin).Decode(&objects); err != nil {
		fmt.Fprintln(os.Stderr, "stdin must be a JSON array of objects:", err)
		os.Exit(2)
	}
	results := make([]result, 0, len(objects))
	for _, obj := range objects {
		results = append(results, health(string(script), obj, *openLibs))
	}
	out, _ := json.MarshalIndent(results, "", "  ")
	fmt.Println(string(out))
}

func health(script string, obj any, openLibs bool) result {
	l := lua.NewState(lua.Options{SkipOpenLibs: !openLibs})
	defer l.Close()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	if !openLibs {
		// Argo CD always opens these three, even without useOpenLibs.
		for _, lib := range []struct {
			name string
			open lua.LGFunction
		}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
			l.Push(l.NewFunction(lib.open))
			l.Push(lua.LString(lib.name))
			l.Call(1, 0)
		}
	}
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return result{Error: err.Error()}
	}
	ret := l.Get(-1)
	switch ret.Type() {
	case lua.LTNil:
		return result{}
	case lua.LTTable:
		t := ret.(*lua.LTable)
		status, message := t.RawGetString("status"), t.RawGetString("message")
		s, m := lua.LVAsString(status), lua.LVAsString(message)
		if !validStatus[s] {
			s, m = "Unknown", "Lua returned an invalid health status"
		}
		return result{Status: &s, Message: &m}
	default:
		return result{Error: fmt.Sprintf("expect table output from Lua script, not %s", ret.Type())}
	}
}

// toLua converts decoded JSON into Lua values as Argo CD's decodeValue does
// (objects and arrays become tables, numbers become Lua numbers).
func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case []any:
		t := l.NewTable()
		for _, e := range x {
			t.Append(toLua(l, e))
		}
		return t
	case map[string]any:
		t := l.NewTable()
		for k, e := range x {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	default:
		panic(fmt.Sprintf("unexpected JSON value %T", v))
	}
}
