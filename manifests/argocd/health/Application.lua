-- Argo CD health for argoproj.io/Application (Argo CD's documented check, removed from its
-- defaults in 1.8): an Application is as healthy as what it synced, so the app-of-apps in
-- manifests/argocd/app-of-apps.yaml waits for each sync wave (CRDs, operator) to be Healthy.
local hs = {status = "Progressing", message = ""}
if obj.status ~= nil and obj.status.health ~= nil then
  hs.status = obj.status.health.status
  if obj.status.health.message ~= nil then
    hs.message = obj.status.health.message
  end
end
return hs
