-- Argo CD health for acgs.io/FlywheelPolicy
local hs = {status = "Progressing", message = "Waiting for the operator"}
if obj.status == nil or obj.status.phase == nil then return hs end
if obj.status.phase == "Failed" then
  hs.status = "Degraded"
else
  hs.status = "Healthy"
end
hs.message = obj.status.message or obj.status.phase
return hs
