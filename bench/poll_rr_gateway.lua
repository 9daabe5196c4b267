-- wrk script: round-robin DDI polls over N devices bench-0..bench-(N-1), authenticated
-- with the tenant's gateway token (GATEWAY_TOKEN in the environment).
-- usage: wrk -t1 -c50 -d15s --latency -s poll_rr_gateway.lua URL/DEFAULT/controller/v1/ -- N
local n = 1000
local counter = 0
local token = os.getenv("GATEWAY_TOKEN") or ""
function init(args)
  if args[1] ~= nil then n = tonumber(args[1]) end
end
function request()
  local id = counter % n
  counter = counter + 1
  return wrk.format("GET", "/DEFAULT/controller/v1/bench-" .. id, {["Authorization"] = "GatewayToken " .. token})
end
