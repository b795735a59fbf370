"""``cnlrn serve`` in a real browser: Debian's headless Chromium, driven by Selenium, uploads, waits, downloads.

CNLRN_UPDATE_SCREENSHOT=1 writes the page's screenshot to docs/serve.png (shown in the README) instead of tmp.
"""

import json
import os
import shutil
import signal
import subprocess
import time
import urllib.request

import cv2
import numpy as np
import pytest

from cnlrn_arch.web.jobs import write_examples
from cnlrn_base.project import DEMO_CHECKPOINT
from tests.helpers import ENV, REPO_DIR, command
from tests.test_web.test_jobs import free_port

pytestmark = pytest.mark.slow
webdriver = pytest.importorskip('selenium.webdriver')
pytest.importorskip('gradio')
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.action_chains import ActionChains  # noqa: E402
from selenium.webdriver.common.actions.wheel_input import ScrollOrigin  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

# Chromium as root in a container, offline: no sandbox, no GPU, no shared-memory files, no calls home
CHROMIUM_FLAGS = (
    '--headless=new',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-dev-shm-usage',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--no-first-run',
    '--no-proxy-server',
    '--window-size=1280,1000',
)
SCREENSHOT = os.path.join(REPO_DIR, 'docs', 'serve.png')
# urllib without the environment's proxies: the server is on this machine
LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until_serving(url, process, log, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f'cnlrn serve exited with {process.returncode}:\n{log.read_text()}')
        try:
            with LOCAL.open(url, timeout=5):
                return
        except OSError:
            time.sleep(0.5)
    pytest.fail(f'cnlrn serve did not answer in {timeout} s:\n{log.read_text()}')


@pytest.fixture
def browser(tmp_path):
    chromium, chromedriver = shutil.which('chromium'), shutil.which('chromedriver')
    if not (chromium and chromedriver):
        pytest.skip("needs Debian's chromium and chromium-driver: make browser")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f'--user-data-dir={tmp_path / "profile"}')
    prefs = {'download.default_directory': str(tmp_path / 'downloads'), 'download.prompt_for_download': False}
    options.add_experimental_option('prefs', prefs)
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()


def api_error_for_server_path(url, path):
    """What the page's API answers when asked to restore a file on the server, not uploaded."""
    payload = {'data': [{'path': path, 'meta': {'_type': 'gradio.FileData'}}, 0, False, False]}
    request = urllib.request.Request(
        f'{url}gradio_api/call/restore', json.dumps(payload).encode(), {'Content-Type': 'application/json'}
    )
    with LOCAL.open(request, timeout=10) as response:
        event = json.load(response)['event_id']
    with LOCAL.open(f'{url}gradio_api/call/restore/{event}', timeout=60) as response:
        return response.read().decode()


def test_upload_restore_download_in_chromium(tmp_path, browser):
    (tmp_path / 'examples').mkdir()
    photo = write_examples(str(tmp_path / 'examples'))[1]  # the coffee cup's blurry 64x64 LR
    corrupt, big, notes = tmp_path / 'corrupt.png', tmp_path / 'big.png', tmp_path / 'notes.txt'
    corrupt.write_bytes(b'\x89PNG\r\n\x1a\nnot really')
    notes.write_text('not a picture')
    big.write_bytes(np.random.default_rng(0).bytes(1_500_000))
    tmp, cwd, downloads, log = (tmp_path / name for name in ('tmp', 'cwd', 'downloads', 'serve.log'))
    tmp.mkdir()
    cwd.mkdir()
    port = free_port()
    url = f'http://127.0.0.1:{port}/'
    with open(log, 'w') as log_file:
        server = subprocess.Popen(
            [command('cnlrn'), 'serve', '--port', str(port), '--max-upload-mb', '1'],
            cwd=cwd,
            env=ENV | {'TMPDIR': str(tmp)},
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    infer = subprocess.Popen(
        [command('cnlrn'), 'infer', '-i', photo, '-o', tmp_path / 'infer', '--weights', DEMO_CHECKPOINT],
        env=ENV,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_until_serving(url, server, log)
        browser.get(url)
        wait = WebDriverWait(browser, 120)

        def upload(path):
            wait.until(lambda d: d.find_element(By.CSS_SELECTOR, '#upload input[type=file]')).send_keys(str(path))

        def shown(selector):
            return wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, selector))

        def message(*fragments):
            def found(driver):
                texts = [t.text for t in driver.find_elements(By.CSS_SELECTOR, '[data-testid="toast-text"]')]
                return [t for t in texts if all(f in t for f in fragments)]

            return wait.until(found)

        upload(big)
        message('maximum allowed size', 'big.png')
        upload(notes)
        shown('#upload td.filename[aria-label="notes.txt"]')
        browser.find_element(By.ID, 'restore').click()
        message('notes.txt: not an image or a clip')
        browser.find_element(By.CSS_SELECTOR, '#upload button[aria-label="Clear"]').click()
        upload(corrupt)
        shown('#upload td.filename[aria-label="corrupt.png"]')
        browser.find_element(By.ID, 'restore').click()
        message('corrupt.png: cannot read')
        for close in browser.find_elements(By.CSS_SELECTOR, '[data-testid="toast-close"]'):
            close.click()
        # the server keeps serving: the next upload is restored
        browser.find_element(By.CSS_SELECTOR, '#upload button[aria-label="Clear"]').click()
        upload(photo)
        shown('#upload td.filename[aria-label="coffee.png"]')
        start = time.monotonic()
        browser.find_element(By.ID, 'restore').click()
        link = shown('#result a[download]')[0]
        seconds = time.monotonic() - start
        assert len(shown('#slider img')) == 2  # bicubic and CNLRN
        link.click()
        downloaded = downloads / 'coffee_cnlrn.png'
        wait.until(lambda d: downloaded.exists())
        # the job's files and its upload are removed once its download was fetched
        [uploads] = tmp.glob('cnlrn-serve-*/uploads')
        wait.until(lambda d: not [p for p in uploads.glob('*/coffee*.png') if p.parent.name != 'examples'])
        assert not list(uploads.glob('job-*'))

        assert infer.wait(timeout=120) == 0, infer.stderr.read()
        page, command_output = (
            cv2.imread(str(p), cv2.IMREAD_UNCHANGED) for p in (downloaded, tmp_path / 'infer' / 'coffee_cnlrn.png')
        )
        assert page.shape == (256, 256, 3)  # 4x the 64x64 input
        np.testing.assert_array_equal(page, command_output)

        browser.execute_script('window.scrollTo(0, 0)')
        browser.save_screenshot(
            SCREENSHOT if os.environ.get('CNLRN_UPDATE_SCREENSHOT') == '1' else tmp_path / 'serve.png'
        )
        before = shown('#slider img')[0]
        for _ in range(5):  # the mouse wheel over the slider zooms both pictures
            ActionChains(browser).scroll_from_origin(ScrollOrigin.from_element(before, 50, 50), 0, -100).perform()
        wait.until(lambda d: 'scale(1)' not in d.find_element(By.CSS_SELECTOR, '#slider img').get_attribute('style'))
        resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
        assert resources and all(r.startswith(url) for r in resources), resources  # no fonts or scripts from elsewhere
        assert 'event: error' in api_error_for_server_path(url, DEMO_CHECKPOINT)
        print(f'upload to result: {seconds:.1f} s')
    finally:
        server.send_signal(signal.SIGTERM)
        returncode = server.wait(timeout=60)
        infer.kill()
        infer.wait()
    assert returncode == 0, log.read_text()
    # the one traceback is Gradio's own, refusing the API's server path above; uploads log one line each
    assert log.read_text().count('Traceback') == log.read_text().count('InvalidPathError: Cannot move') == 1
    assert 'cnlrn serve: refused: notes.txt: not an image or a clip' in log.read_text()
    assert os.listdir(tmp) == []  # the server's temporary folder, uploads and results in it, is gone
    assert os.listdir(cwd) == []
