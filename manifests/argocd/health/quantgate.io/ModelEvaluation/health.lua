-- Argo CD health check for quantgate.io/ModelEvaluation.
-- Portable: uses only Lua 5.1 base functions and the table library, which Argo CD
-- opens even without useOpenLibs (string, math and os are nil there).
-- Healthy = promotable (Ship, Monitor); Suspended = ABTest, a human decides;
-- Degraded = Block or Failed (stops a sync wave); Progressing = not decided yet.

local function round2(x)
  local y = x * 100 + 0.5
  return (y - y % 1) / 100
end

local function drop_text(status)
  if type(status.averageDrop) == "number" then
    return "average accuracy drop " .. tostring(round2(status.averageDrop)) .. "%"
  end
  return "average accuracy drop not reported"
end

-- At most two reasons, so the message stays short in the UI and CLI.
local function reasons_text(status)
  local reasons = status.reasons
  if type(reasons) ~= "table" or #reasons == 0 then
    return nil
  end
  local shown = {}
  for i = 1, #reasons do
    if i > 2 then
      break
    end
    shown[i] = tostring(reasons[i])
  end
  local text = table.concat(shown, "; ")
  if #reasons > 2 then
    text = text .. " (+" .. tostring(#reasons - 2) .. " more)"
  end
  return text
end

local hs = {}
local status = obj.status
local generation = obj.metadata and obj.metadata.generation

if type(status) ~= "table" or status.phase == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for the quantgate operator to start the evaluation"
  return hs
end

local phase = status.phase
if phase == "Pending" or phase == "WaitingForEndpoints" or phase == "Running" then
  hs.status = "Progressing"
  if type(status.message) == "string" and status.message ~= "" then
    hs.message = phase .. ": " .. status.message
  else
    hs.message = phase
  end
  return hs
end

-- A finished status only counts for the spec that produced it.
local observed = status.observedGeneration
if type(generation) == "number" and (type(observed) ~= "number" or observed < generation) then
  hs.status = "Progressing"
  hs.message = "Waiting for the evaluation of generation " .. tostring(generation) ..
    " (status is from generation " .. tostring(observed or "unknown") .. ")"
  return hs
end

if phase == "Failed" then
  hs.status = "Degraded"
  if type(status.message) == "string" and status.message ~= "" then
    hs.message = "Evaluation failed: " .. status.message
  else
    hs.message = "Evaluation failed; see kubectl describe meval " .. tostring(obj.metadata and obj.metadata.name)
  end
  return hs
end

if phase ~= "Succeeded" then
  hs.status = "Unknown"
  hs.message = "Unknown phase " .. tostring(phase)
  return hs
end

local verdict = status.verdict
if verdict == "Ship" or verdict == "Monitor" then
  hs.status = "Healthy"
  hs.message = verdict .. ": " .. drop_text(status)
  if verdict == "Monitor" then
    hs.message = hs.message .. "; promotable, watch it in production"
  end
elseif verdict == "ABTest" then
  hs.status = "Suspended"
  hs.message = "ABTest: " .. drop_text(status) .. "; a human decides after an A/B test"
elseif verdict == "Block" then
  hs.status = "Degraded"
  hs.message = "Block: " .. (reasons_text(status) or drop_text(status))
else
  -- Fail closed: a finished evaluation without a known verdict never promotes.
  hs.status = "Degraded"
  hs.message = "Succeeded without a known verdict; not promotable"
end
return hs
