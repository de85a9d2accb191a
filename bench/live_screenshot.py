#!/usr/bin/env python3
"""Screenshots of the live view of the main job, for docs/images/.

    python3 examples/pipelines/gen_corpus.py 100 > /tmp/corpus.txt
    python3 bench/live_screenshot.py /tmp/corpus.txt docs/images

Runs examples/pipelines/wordcount.toml on CORPUS with `--ui`, opens the page
in headless Chromium through chromedriver (Debian: chromium, chromium-driver),
prints the progress text a few times (the ETA moving), and saves
wordcount-live.png mid-run and wordcount-final.png after the end. Needs
`cargo build --release --workspace`.
"""
import base64, json, os, re, socket, subprocess, sys, tempfile, time, urllib.request

def call(method, url, body=None):
    data = json.dumps(body if body is not None else {}).encode() if method == "POST" else None
    req = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)

def main():
    corpus, out = sys.argv[1], sys.argv[2]
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    driver = subprocess.Popen(["chromedriver", f"--port={port}"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            call("GET", base + "/status")
            break
        except OSError:
            time.sleep(0.1)
    args = ["--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
            "--disable-background-networking", "--window-size=1400,860",
            "--user-data-dir=" + tempfile.mkdtemp()]
    caps = {"capabilities": {"alwaysMatch": {"browserName": "chrome",
            "goog:chromeOptions": {"binary": "/usr/bin/chromium", "args": args}}}}
    session = base + "/session/" + call("POST", base + "/session", caps)["value"]["sessionId"]
    page = lambda script: call("POST", session + "/execute/sync", {"script": script, "args": []})["value"]
    def shot(name):
        png = call("GET", session + "/screenshot")["value"]
        with open(os.path.join(out, name), "wb") as f:
            f.write(base64.b64decode(png))
    run = subprocess.Popen(
        [os.path.join(root, "target/release/papy"), "run", "-q", os.path.join(root, "examples/pipelines/wordcount.toml"),
         "--set", f"inputs.corpus.path={os.path.abspath(corpus)}", "--ui", "--ui-linger", "3"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = re.search(r"(http://\S+)", run.stderr.readline()).group(1)
    call("POST", session + "/url", {"url": url})
    for _ in range(6):
        time.sleep(0.15)
        print("progress:", page("return document.getElementById('progress-text').textContent"))
    shot("wordcount-live.png")
    run.wait()
    time.sleep(0.7)
    print("final:", page("return [document.getElementById('state').textContent, "
                         "[...document.querySelectorAll('#graph g.node')].map((g) => `${g.dataset.node} in ${g.dataset.in} out ${g.dataset.out}`).join(', '), "
                         "document.querySelector('#resources tbody tr').dataset.workers + ' workers']"))
    shot("wordcount-final.png")
    call("DELETE", session)
    driver.kill()

if __name__ == "__main__":
    main()
