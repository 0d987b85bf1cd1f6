#!/usr/bin/env bash
# Checks `bftembed serve` with an independent HTTP client (curl) and an independent
# JSON parser (Python's json module). Usage: serve_with_curl.sh PATH/TO/bftembed
set -euo pipefail
bin="$1"
work="$(mktemp -d)"
"$bin" serve --port 0 --embedding-model all-minilm-l6-v2 > "$work/out" 2> "$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 1 600); do
  grep -q "listening on" "$work/out" && break
  kill -0 $pid 2>/dev/null || { cat "$work/err"; exit 1; }
  sleep 0.1
done
base="$(sed -n 's/^listening on //p' "$work/out")"
echo "server at $base"

curl -sf "$base/models" > "$work/models.json"
python3 - "$work/models.json" <<'PY'
import json, sys
ids = [m["id"] for m in json.load(open(sys.argv[1]))["data"]]
assert "smollm2-135m-instruct" in ids and "all-minilm-l6-v2" in ids, ids
PY

curl -sf "$base/chat/completions" -H 'Content-Type: application/json' -d '{
  "model": "smollm2-135m-instruct",
  "messages": [{"role": "system", "content": "You are a biomedical expert."},
               {"role": "user", "content": "tell me about gene TP53."}],
  "max_tokens": 16, "temperature": 0}' > "$work/chat.json"
python3 - "$work/chat.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["object"] == "chat.completion", r
c = r["choices"][0]
assert c["message"]["role"] == "assistant" and c["message"]["content"].strip(), r
assert c["finish_reason"] in ("stop", "length"), r
assert 0 < r["usage"]["completion_tokens"] <= 16, r
assert r["usage"]["total_tokens"] == r["usage"]["prompt_tokens"] + r["usage"]["completion_tokens"]
PY

curl -sf "$base/embeddings" -H 'Content-Type: application/json' \
  -d '{"model": "all-minilm-l6-v2", "input": "tumor suppressor"}' > "$work/emb.json"
python3 - "$work/emb.json" <<'PY'
import json, math, sys
v = json.load(open(sys.argv[1]))["data"][0]["embedding"]
assert len(v) == 384, len(v)
assert abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-4
PY

status="$(curl -s -o "$work/bad.json" -w '%{http_code}' "$base/chat/completions" \
  -H 'Content-Type: application/json' -d '{"messages": [oops')"
[ "$status" = 400 ] || { echo "malformed JSON gave HTTP $status"; exit 1; }
python3 -c "import json,sys; assert 'not JSON' in json.load(open(sys.argv[1]))['error']['message']" "$work/bad.json"
status="$(curl -s -o "$work/range.json" -w '%{http_code}' "$base/chat/completions" \
  -H 'Content-Type: application/json' \
  -d '{"messages": [{"role": "user", "content": "hi"}], "temperature": 9}')"
[ "$status" = 400 ] || { echo "temperature 9 gave HTTP $status"; exit 1; }
python3 -c "import json,sys; assert 'temperature 9' in json.load(open(sys.argv[1]))['error']['message']" "$work/range.json"
status="$(curl -s -o /dev/null -w '%{http_code}' "$base/nowhere")"
[ "$status" = 404 ] || { echo "unknown route gave HTTP $status"; exit 1; }
echo "serve: all curl checks passed"
