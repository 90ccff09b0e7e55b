-- POST /api/v1/auth/wechat-login: a mini-program user signing in with a fresh wx.login code
-- against the local fake WeChat. 64 users per thread, each request a code never used before
-- (the fake, like WeChat, answers 40163 to a reused code). The bare baseline's floor
-- (POST /wechat-code) passes its own path as the script's argument.
local body_head = '{"code":"demo-bench'
local headers = { ["Content-Type"] = "application/json" }
local counter = 0
local prefix
local path = "/api/v1/auth/wechat-login"
local next_tid = 0

function setup(thread)
  thread:set("tid", next_tid)
  next_tid = next_tid + 1
end

function init(args)
  if args[1] then path = args[1] end
  prefix = string.format("%d%d", os.time() % 100000, math.random(1000, 9999))
end

function request()
  counter = counter + 1
  local user = counter % 64
  local body = string.format('%s%dt%s.%s-%d"}', body_head, user, tostring(tid or 0), prefix, counter)
  return wrk.format("POST", path, headers, body)
end
