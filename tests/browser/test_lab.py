"""JupyterLab as a learner uses it: open chapter 1, save it, run every cell, move a slider.

Starts the course's own JupyterLab on 127.0.0.1 with a token in a scratch folder (the chapter is
copied there, so the repository's notebook is never touched), drives it with headless Chromium,
and stops it. About a minute; marked slow.
"""

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pagecheck
import pytest

CHAPTER = pagecheck.ROOT / "notebooks" / "01_lif_neurons.ipynb"
KERNEL_IDLE = """
const w = window.jupyterapp && jupyterapp.shell.currentWidget;
const k = w && w.sessionContext && w.sessionContext.session && w.sessionContext.session.kernel;
return k ? k.status : null;
"""
CELL_STATE = """
const nb = jupyterapp.shell.currentWidget.content;
const code = nb.widgets.filter(c => c.model.type === 'code');
return {
  cells: code.length,
  run: code.filter(c => c.model.executionCount !== null).length,
  errors: code.filter(c => c.model.outputs.toJSON().some(o => o.output_type === 'error'))
              .map(c => code.indexOf(c)),
  widget_errors: (document.body.innerText.match(/Error displaying widget[^\\n]*/g) || []),
};
"""
EXPLORER_FIGURE = """
const label = Array.from(document.querySelectorAll('.widget-slider .widget-label'))
  .find(l => l.textContent.trim() === arguments[0]);
if (!label) return null;
const box = label.closest('.widget-vbox');
const img = box && box.querySelector('.widget-output img');
return img ? img.src : null;
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(what, check, timeout, every=0.5):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def lab(tmp_path):
    """(base url, token, scratch folder) of a running JupyterLab; stopped afterwards."""
    pagecheck.need_chromium()
    work = tmp_path / "course"
    (work / "notebooks").mkdir(parents=True)
    shutil.copy(CHAPTER, work / "notebooks" / CHAPTER.name)
    port, token = free_port(), secrets.token_hex(16)
    env = {**os.environ, "SPIKE_QUICK": "1", "OPENBLAS_NUM_THREADS": "1",
           "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),  # no user settings, no workspace
           "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
           "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces")}
    cmd = [str(Path(sys.executable).with_name("jupyter-lab")), "--no-browser",
           "--ip=127.0.0.1", f"--port={port}", f"--IdentityProvider.token={token}",
           f"--ServerApp.root_dir={work}", "--expose-app-in-browser",
           "--LabApp.news_url=", "--ServerApp.open_browser=False"]
    if os.getuid() == 0:
        cmd.append("--allow-root")
    log = (tmp_path / "lab.log").open("w")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    base = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(f"{base}/api/status?token={token}", timeout=2):
                return True
        except OSError:
            return proc.poll() is not None  # stop waiting if Lab died

    try:
        wait_for("JupyterLab to start", up, 60)
        assert proc.poll() is None, (tmp_path / "lab.log").read_text()[-2000:]
        yield base, token, work
    finally:
        os.killpg(proc.pid, signal.SIGTERM)  # Lab shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()


@pytest.mark.slow
def test_chapter_1_saves_unchanged_runs_and_redraws_when_a_slider_moves(lab):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    base, token, work = lab
    path = work / "notebooks" / CHAPTER.name
    stored = path.read_bytes()
    driver = pagecheck.make_driver(1280, 1000)
    try:
        driver.get(f"{base}/lab/tree/notebooks/{CHAPTER.name}?token={token}")
        wait_for("the kernel", lambda: driver.execute_script(KERNEL_IDLE) == "idle", 120)

        # opening and saving changes nothing: the notebook stores what Lab writes
        driver.execute_script("return jupyterapp.commands.execute('docmanager:save')")
        time.sleep(2)
        assert path.read_bytes() == stored, "saving in JupyterLab rewrote the chapter"

        driver.execute_script("jupyterapp.commands.execute('notebook:run-all-cells')")
        state = wait_for("every cell to run", lambda: (
            (s := driver.execute_script(CELL_STATE))["run"] == s["cells"]
            and driver.execute_script(KERNEL_IDLE) == "idle" and s), 300, every=2)
        assert not state["errors"], f"code cells {state['errors']} show an error"
        assert not state["widget_errors"], state["widget_errors"]

        before = wait_for("the explorer's figure",
                          lambda: driver.execute_script(EXPLORER_FIGURE, "input x"), 60)
        label = next(e for e in driver.find_elements(By.CSS_SELECTOR, ".widget-slider .widget-label")
                     if e.text.strip() == "input x")
        handle = label.find_element(By.XPATH, "./ancestor::div[contains(@class,'widget-slider')]"
                                              "//div[contains(@class,'noUi-handle')]")
        driver.execute_script("arguments[0].scrollIntoView({block: 'center'})", handle)
        handle.click()
        for _ in range(20):  # 20 steps of 0.01: input x from 0.30 to 0.50
            handle.send_keys(Keys.ARROW_RIGHT)
        after = wait_for("the figure to redraw", lambda: (
            (src := driver.execute_script(EXPLORER_FIGURE, "input x")) != before and src), 60)
        assert after.startswith("data:image/png")
        assert not driver.execute_script(CELL_STATE)["widget_errors"]
    finally:
        driver.quit()
