-- wrk script: POST /v1/jobs as multipart/form-data with one small PNG and a
-- prompt, the way the page uploads a photo. The PNG path comes from the
-- environment (TS_BENCH_PNG); the body is built once.
local path = os.getenv("TS_BENCH_PNG")
local f = assert(io.open(path, "rb"))
local png = f:read("*a")
f:close()
local b = "tsBenchBoundary7"
local body = "--" .. b .. "\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\n" ..
    "a lighthouse at dusk\r\n" ..
    "--" .. b .. "\r\nContent-Disposition: form-data; name=\"image\"; filename=\"p.png\"\r\n" ..
    "Content-Type: image/png\r\n\r\n" .. png .. "\r\n--" .. b .. "--\r\n"
wrk.method = "POST"
wrk.body = body
wrk.headers["Content-Type"] = "multipart/form-data; boundary=" .. b

-- Count answers by status, so a run shows how many uploads were accepted
-- (202) and how many met the full queue (503).
local counts = {}
local threads = {}
function setup(thread)
    table.insert(threads, thread)
end
function init()
    statuses = {}
end
function response(status)
    statuses[status] = (statuses[status] or 0) + 1
end
function done(summary, latency, requests)
    local total = {}
    for _, t in ipairs(threads) do
        local s = t:get("statuses")
        for k, v in pairs(s) do
            total[k] = (total[k] or 0) + v
        end
    end
    local parts = {}
    for k, v in pairs(total) do
        table.insert(parts, k .. ": " .. v)
    end
    table.sort(parts)
    io.write("statuses  " .. table.concat(parts, ", ") .. "\n")
end
