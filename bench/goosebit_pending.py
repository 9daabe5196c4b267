#!/usr/bin/env python3
"""Give every gooseBit 0.2.12 bench device a pending update (run with gooseBit's venv python).

gooseBit has no per-device assignment through its DDI side; its devices are in "rollout"
mode, in which a device is offered the newest rollout's software when that differs from the
version it reports. So: upload a newer .swu (version 2.0.0, same hardware) and start a
rollout of it for the feed the devices are in; then check that every device's poll links a
deploymentBase.
usage: goosebit_pending.py BASE_URL N_DEVICES SWU_FILE (admin/admin-pass from bench_setup.py)
"""

import sys

import httpx

base, n, swu = sys.argv[1].rstrip("/"), int(sys.argv[2]), sys.argv[3]
ddi = f"{base}/DEFAULT/controller/v1"
with httpx.Client(timeout=30) as c:
    login = {"username": "admin", "password": "admin-pass"}
    token = c.post(f"{base}/login", data=login).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    with open(swu, "rb") as f:
        answer = c.put(f"{base}/api/v1/software", headers=headers, files={"file": ("u2.swu", f)})
    answer.raise_for_status()
    software = answer.json()["id"]
    rollout = {"name": "bench-pending", "feed": "default", "software_id": software}
    c.put(f"{base}/api/v1/rollouts", headers=headers, json=rollout).raise_for_status()
    missing = [
        i for i in range(n) if "deploymentBase" not in c.get(f"{ddi}/bench-{i}").json()["_links"]
    ]
    print("poll JSON (bench-0):", c.get(f"{ddi}/bench-0").text)
    print(f"software_id={software}: {n - len(missing)} of {n} devices have deploymentBase")
    if missing:
        sys.exit(1)
