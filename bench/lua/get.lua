-- GET / (the page, or the reference's hello): wrk's default request, with the report.
local here = debug.getinfo(1, "S").source:sub(2):match("(.*/)")
dofile(here .. "report.lua")
