-- POST /verify as htmx does, a fresh Dutch mobile number per request, no cookie.
-- wrk ... -s start.lua -- <offset>: numbers start at +3162<offset + thread * 1e6>.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)")
dofile(here .. "report.lua")

local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local counter = 0
local base = 0
function init(args)
  base = tonumber(args[1] or "0") + tid * 1000000
end

function request()
  counter = counter + 1
  local body = string.format("phone=%%2B3162%07d&country=NL", (base + counter) % 10000000)
  return wrk.format("POST", "/verify", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["HX-Request"] = "true",
  }, body)
end
