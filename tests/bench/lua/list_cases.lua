-- GET /api/v1/cases (the caller's list, first page) as a clerk. The token comes from the data
-- file rather than the command line, so it never shows in the process list.
local pool = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")
local req

setup = pool.setup

function init(args)
  local data = pool.init(args)
  req = wrk.format("GET", "/api/v1/cases", { ["Authorization"] = "Bearer " .. data.token })
end

function request()
  return req
end
