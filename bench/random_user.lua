-- wrk script: GET <SPIKE_PATH><a random id from IDS_FILE><QUERY> (one id per line; QUERY
-- e.g. "?explain=true", empty when unset).
local ids = {}
for line in io.lines(os.getenv("IDS_FILE")) do ids[#ids + 1] = line end
local prefix = os.getenv("SPIKE_PATH") or "/predict/"
local query = os.getenv("QUERY") or ""
local counter = 0
setup = function(thread) thread:set("id", counter); counter = counter + 1 end
init = function(args) math.randomseed(os.time() * 1000 + id) end
request = function()
  return wrk.format("GET", prefix .. ids[math.random(1, #ids)] .. query)
end
