-- Argo CD health for acgs.io/TrainingJob
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.phase == nil then return hs end
local GOAL_PHASE = "Succeeded"
-- @common
local phase = obj.status.phase
hs.message = obj.status.message or phase
-- The same states kstatus reads: Stalled (a permanent failure), Ready (the goal), else in progress.
if is_true("Stalled") then
  hs.status = "Degraded"
  return hs
end
if ready() then
  hs.status = "Healthy"
elseif phase == "Failed" then
  hs.status = "Degraded"
elseif phase == "Suspended" then
  hs.status = "Suspended"
elseif obj.status.progress ~= nil and obj.status.progress.percent ~= nil then
  hs.message = phase .. " (" .. tostring(obj.status.progress.percent) .. "%)"
end
return hs
