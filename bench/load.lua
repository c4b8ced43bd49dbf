-- wrk script for bench/load.py: every request carries the bearer token and
-- walks through the read routes a dashboard, a CLI and a monitoring system
-- hit; the paths come in through the environment.
local token = os.getenv("DRSWITCH_TOKEN")
local paths = {}
for p in string.gmatch(os.getenv("DRSWITCH_PATHS"), "[^ ]+") do
  paths[#paths + 1] = p
end
local i = 0

request = function()
  i = i + 1
  local path = paths[(i % #paths) + 1]
  return wrk.format("GET", path, { ["Authorization"] = "Bearer " .. token })
end
