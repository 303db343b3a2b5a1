-- A sampling profiler of Prosody's Lua code, for make bench's measurements
-- only (issue 17.3; BenchmarkProsodyFlushVariants -variants.luaprof DIR sets
-- PROSODY_LUAPROF, which makes the test Prosody load this module).
-- Every 1000 VM instructions, in every coroutine, it records the running
-- function and line (self) and every function on the stack (inclusive).
-- It counts instructions, not time: work inside C functions (string.gsub,
-- expat, socket writes) shows only through the Lua line that called them;
-- perf sees those. It slows Prosody about threefold while loaded.
-- SIGUSR1 resets the counts and writes how many resets there were to
-- $LUAPROF_OUT.resets; SIGUSR2 writes the counts to $LUAPROF_OUT.N.
local getinfo, sethook = debug.getinfo, debug.sethook
local self_c, incl_c, total = {}, {}, 0
local function key(info)
  return (info.short_src or "?") .. ":" .. (info.linedefined or 0) .. " " .. (info.name or "?")
end
local function hook()
  total = total + 1
  local seen = {}
  for level = 2, 40 do
    local info = getinfo(level, "Sn")
    if not info then break end
    local k = key(info)
    if level == 2 then
      local line = getinfo(2, "l").currentline
      self_c[k .. " @" .. tostring(line)] = (self_c[k .. " @" .. tostring(line)] or 0) + 1
    end
    if not seen[k] then seen[k] = true; incl_c[k] = (incl_c[k] or 0) + 1 end
  end
end
sethook(hook, "", 1000)
sethook(debug.getregistry()[1], hook, "", 1000) -- the main thread (LUA_RIDX_MAINTHREAD)
local cc = coroutine.create
coroutine.create = function(f) local co = cc(f); sethook(co, hook, "", 1000); return co end
local out = os.getenv("LUAPROF_OUT") or "/tmp/luaprof"
local n, resets = 0, 0
module:hook_global("signal/SIGUSR1", function()
  self_c, incl_c, total = {}, {}, 0
  resets = resets + 1
  local f = io.open(out .. ".resets.tmp", "w")
  f:write(tostring(resets)); f:close()
  os.rename(out .. ".resets.tmp", out .. ".resets")
end)
module:hook_global("signal/SIGUSR2", function()
  n = n + 1
  local f = io.open(out .. "." .. n .. ".tmp", "w")
  local function dump(title, t)
    local arr = {}
    for k, v in pairs(t) do arr[#arr + 1] = { k, v } end
    table.sort(arr, function(a, b) return a[2] > b[2] end)
    f:write(title, " (samples: ", total, ")\n")
    for i = 1, math.min(45, #arr) do f:write(string.format("%6.1f%%  %s\n", 100 * arr[i][2] / total, arr[i][1])) end
  end
  dump("self", self_c); dump("inclusive", incl_c)
  f:close()
  os.rename(out .. "." .. n .. ".tmp", out .. "." .. n)
end)
