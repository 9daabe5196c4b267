-- wrk script: DDI polls over N devices bench-0..bench-(N-1), authenticated with the tenant's
-- gateway token (GATEWAY_TOKEN in the environment). Round-robin by default; with STRIDE
-- (coprime with N) the i-th poll goes to bench-((i * STRIDE) mod N), which still visits
-- every device once per N polls but spreads a short run over the whole table (for a fleet
-- far larger than one run's polls).
-- usage: wrk -t1 -c50 -d15s --latency -s poll_rr_gateway.lua URL/DEFAULT/controller/v1/ -- N [STRIDE]
local n = 1000
local stride = 1
local counter = 0
local token = os.getenv("GATEWAY_TOKEN") or ""
function init(args)
  if args[1] ~= nil then n = tonumber(args[1]) end
  if args[2] ~= nil then stride = tonumber(args[2]) end
end
function request()
  local id = (counter * stride) % n
  counter = counter + 1
  return wrk.format("GET", "/DEFAULT/controller/v1/bench-" .. id, {["Authorization"] = "GatewayToken " .. token})
end
