#!/usr/bin/env bash
# A paid model call with nothing but curl, jq and a key: the README's walk-through, runnable.
# Start a gateway first:  agora gateway --faucet 1000000000000000000
# The key: AGORA_KEY=0x... (your own), or AGORA_SEED=SEED:NAME for a throwaway one.
set -euo pipefail
GW=${GW:-http://127.0.0.1:8000}
export AGORA_SEED=${AGORA_SEED:-walkthrough:alice}
sign() { agora sign request --url "$GW" "$@"; }
post() {  # post PATH BODY: a signed POST with a JSON body
  curl -sf -X POST "$GW$1" -H content-type:application/json -d "$2" $(sign POST "$1" --body "$2")
}
relay() {  # relay OP ARGS: have the gateway prepare a ledger write, sign it here, submit it
  local answer id signed
  answer=$(post /v1/tx "{\"op\":\"$1\",\"args\":$2}")
  if [ "$(jq -r .status <<<"$answer")" = sign ]; then
    id=$(jq -r .prepared_id <<<"$answer")
    signed=$(agora sign tx "$answer")
    answer=$(post "/v1/tx/$id" "$signed")
  fi
  jq -c '.receipt | {op, tx_hash, block}' <<<"$answer"
}

# 1. find the cheapest server of the model, with its price per call
SERVER=$(curl -sf "$GW/v1/services?kind=model-call&name=all-MiniLM-L6-v2" | jq -c 'min_by(.price)')
ADDR=$(jq -r .address <<<"$SERVER"); PRICE=$(jq -r .price <<<"$SERVER")
echo "server $ADDR, $PRICE base units a call"

# 2. tokens from the trial market's faucet, an account, and a channel holding 10 calls' worth
post /v1/faucet '{}' | jq -c '{amount}'
relay open_account '{}'
CHANNEL=$(agora sign id)  # a channel id only this key may open: it begins with its address
NOW=$(curl -sf "$GW/v1/chain" | jq .now)
relay open_channel "{\"terms\":{\"channel_id\":\"$CHANNEL\",\"recipient\":\"$ADDR\",\"amount\":$((PRICE * 10)),\"expiration\":$((NOW + 3600))}}"

# 3. the call, paid by a voucher for one call's price, retried safely with its Idempotency-Key
PAYMENT=$(agora sign voucher --url "$GW" "$CHANNEL" "$PRICE")
BODY="{\"service\":\"$ADDR\",\"inputs\":[\"Agents buy GPU time from each other.\"],\"payment\":$PAYMENT}"
JOB=$(curl -sf -X POST "$GW/v1/jobs?wait=20" -H content-type:application/json -H Idempotency-Key:walkthrough-call-1 -d "$BODY" \
      $(sign POST "/v1/jobs?wait=20" --body "$BODY"))
ID=$(jq -r .job_id <<<"$JOB")
jq -c '{job_id, status, shape: .result.shape, metering: .result.metering.tokens}' <<<"$JOB"

# 4. the job once the server's claim of the voucher is on the chain
curl -sf "$GW/v1/jobs/$ID?wait=20" $(sign GET "/v1/jobs/$ID?wait=20") | jq -c '{status, claim_tx, steps: [.steps[].step]}'
curl -sf "$GW/v1/channels/$CHANNEL" | jq -c '{deposit, nonce}'
