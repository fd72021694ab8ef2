-- Argo CD health check for quantgate.io/ModelEvaluationMatrix.
-- Portable: uses only Lua 5.1 base functions and the table library, which Argo CD
-- opens even without useOpenLibs (string, math and os are nil there).
-- Healthy = a variant is selected; Degraded = every row settled and none is selectable, or the
-- matrix failed (stops a sync wave); Progressing = rows still being evaluated.

local hs = {}
local status = obj.status
local generation = obj.metadata and obj.metadata.generation

if type(status) ~= "table" or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the quantgate operator to start the matrix"
  return hs
end

-- A finished status only counts for the spec that produced it.
local observed = status.observedGeneration
if type(generation) == "number" and (type(observed) ~= "number" or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the matrix of generation " .. tostring(generation) ..
    " (status is from generation " .. tostring(observed or "unknown") .. ")"
  return hs
end

local rows = "rows done " .. tostring(status.rowsDone or "unknown")

if status.phase == "Failed" then
  hs.status = "Degraded"
  hs.message = "Matrix failed: " .. tostring(status.message or status.reason or "see kubectl describe mevm")
  return hs
end

if status.phase ~= "Succeeded" then
  hs.status = "Progressing"
  hs.message = tostring(status.phase) .. ": " .. rows
  return hs
end

if type(status.selected) == "string" and status.selected ~= "" then
  hs.status = "Healthy"
  hs.message = "Selected " .. status.selected .. " (up to " .. tostring(status.selectUpTo or "Ship") ..
    "; " .. rows .. ")"
  return hs
end

-- Fail closed: every row settled and none may ship.
hs.status = "Degraded"
hs.message = "No variant selected (up to " .. tostring(status.selectUpTo or "Ship") .. "; " .. rows .. ")"
return hs
