-- Argo CD health for acgs.io/TrainingJob
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.phase == nil then return hs end
local GOAL_PHASE = "Succeeded"
-- @common
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
