-- GET /api/v1/cases/{id} as a clerk, ids cycling over the seeded cases the clerk may see.
local pool = dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "pool.lua")
local headers

setup = pool.setup

function init(args)
  local data = pool.init(args)
  headers = { ["Authorization"] = "Bearer " .. data.token }
end

function request()
  local id = pool.next()
  return wrk.format("GET", "/api/v1/cases/" .. id, headers)
end
