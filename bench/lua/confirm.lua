-- POST /confirm as htmx does, each request with a session cookie from a file.
-- wrk ... -s confirm.lua -- <cookies file> <code> <uses per cookie>
-- Thread t takes every n-th cookie (n threads), so no two threads share one; each
-- cookie is used <uses> times (1 for the right code: a verification verifies once).
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)")
dofile(here .. "report.lua")

local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end

local cookies = {}
local code = "000000"
local uses = 1
local counter = 0
function init(args)
  code = args[2]
  uses = tonumber(args[3] or "1")
  local stride = tonumber(args[4] or "2")
  local i = 0
  for line in io.lines(args[1]) do
    if i % stride == tid then cookies[#cookies + 1] = line end
    i = i + 1
  end
end

function request()
  local cookie = cookies[math.floor(counter / uses) % #cookies + 1]
  counter = counter + 1
  return wrk.format("POST", "/confirm", {
    ["Content-Type"] = "application/x-www-form-urlencoded",
    ["HX-Request"] = "true",
    ["Cookie"] = "voice2fa_session=" .. cookie,
  }, "code=" .. code)
end
