#!/usr/bin/env bash
# The Space as a stranger gets it: assembled from a SpeechGPT folder with --copy-model, installed from nothing but
# its own requirements.txt into a fresh virtual environment (the package itself is the source the folder
# carries), then served with `python app.py` and asked a text and a spoken
# question through gradio_client. Minutes (it downloads torch); results in benchmarks/space_install.md.
#   bash scripts/space_fresh_install.sh LM_FOLDER WORKDIR     (PYTHON=… picks the interpreter with speechgpt-hf's deps)
set -euo pipefail
cd "$(dirname "$0")/.."
lm=$(realpath "$1"); work=$(realpath -m "$2")
python=${PYTHON:-python3}
mkdir -p "$work"

echo "== assembling $work/space from $lm (this checkout)"
PYTHONPATH=$PWD "$python" -m speechgpt_hf_cli space "$work/space" --model "$lm" --copy-model --overwrite
cat "$work/space/requirements.txt"

echo "== installing the Space's requirements into a fresh venv"
rm -rf "$work/venv"
"$python" -m venv "$work/venv"
start=$(date +%s)
(cd "$work/space" && "$work/venv/bin/pip" install -q -r requirements.txt)
echo "installed in $(( $(date +%s) - start )) s; venv size $(du -sh "$work/venv" | cut -f1)"

echo "== the fresh venv has no speechgpt-hf of its own; the app imports the folder's copy"
(cd "$work/space" && "$work/venv/bin/python" -c "import sys; sys.path.insert(0, '.'); import speechgpt_hf; print(speechgpt_hf.__file__)")

echo "== serving the Space from the fresh venv and asking it two questions"
port=7871
(cd "$work/space" && GRADIO_SERVER_NAME=127.0.0.1 GRADIO_SERVER_PORT=$port SPEECHGPT_MAX_NEW_TOKENS=200 \
    exec "$work/venv/bin/python" app.py > "$work/app.log" 2>&1) &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
"$work/venv/bin/python" - "$port" "$work" <<'PY'
import sys, time, urllib.request
import numpy as np, soundfile
from gradio_client import Client, handle_file

port, work = sys.argv[1], sys.argv[2]
url = f"http://127.0.0.1:{port}/"
for _ in range(300):
    try:
        urllib.request.urlopen(url, timeout=5)
        break
    except OSError:
        time.sleep(1)
client = Client(url, verbose=False)
t = np.arange(32000) / 16000
soundfile.write(f"{work}/question.wav", (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), 16000)
for message, answer_in in (({"text": "Tell me about the sea.", "files": []}, "text"),
                           ({"text": "", "files": [handle_file(f"{work}/question.wav")]}, "speech")):
    start = time.perf_counter()
    messages, _, picture, _ = client.predict(message, answer_in, api_name="/respond")
    answer = [item for m in messages[-2:] if m["role"] == "assistant" for item in m["content"]]
    print(f"{answer_in} turn: {time.perf_counter() - start:.1f} s, answer {answer}, picture {picture}")
PY
