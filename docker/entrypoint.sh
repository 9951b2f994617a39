#!/bin/sh
# First start: write /data/wspr.yaml for $WSPR_SERVER_NAME (and $WSPR_DATABASE_URL if set),
# listening on all interfaces so the published ports reach it, the PWA from the image and
# the SFU's media on UDP 50000-50100. Later starts reuse (and never rewrite) it.
set -eu
if [ ! -f /data/wspr.yaml ]; then
  : "${WSPR_SERVER_NAME:?set WSPR_SERVER_NAME for the first start}"
  set -- --server-name "$WSPR_SERVER_NAME"
  if [ -n "${WSPR_DATABASE_URL:-}" ]; then set -- "$@" --database "$WSPR_DATABASE_URL"; fi
  wspr init /data "$@"
  python - <<'PY'
import os
import yaml

path = "/data/wspr.yaml"
with open(path) as f:
    cfg = yaml.safe_load(f)
cfg["listeners"]["client"]["bind_address"] = "0.0.0.0"
cfg["web_client"] = {"enabled": True, "path": "/opt/wspr/web"}
sfu = cfg.setdefault("sfu", {})
sfu["bind_address"] = "0.0.0.0"
sfu.setdefault("rtc", {}).update({"udp_port_min": 50000, "udp_port_max": 50100})
if os.environ.get("WSPR_PUBLIC_IP"):
    sfu["rtc"]["public_ip"] = os.environ["WSPR_PUBLIC_IP"]
if os.environ.get("WSPR_SFU_PUBLIC_URL"):
    sfu["public_url"] = os.environ["WSPR_SFU_PUBLIC_URL"]
if os.environ.get("WSPR_PUBLIC_BASEURL"):
    cfg["public_baseurl"] = os.environ["WSPR_PUBLIC_BASEURL"]
with open(path, "w") as f:
    yaml.safe_dump(cfg, f, sort_keys=False)
PY
fi
exec wspr run -c /data/wspr.yaml
