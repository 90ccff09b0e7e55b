-- Baseline: POST /rows with a small JSON body.
wrk.method = "POST"
wrk.body = '{"payload":"benchmark row: one short line of text, about as long as a case comment"}'
wrk.headers["Content-Type"] = "application/json"
