"""Reviewing flagged labels: the decisions log, its export to a relabel file, the server's refusals, and the page
itself in headless Chromium (Debian's chromium and chromium-driver, driven by Selenium)."""

import json
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from conftest import run_command

from keras_apml import label_files, review
from keras_apml.errors import InputError

ROOT = Path(__file__).parents[1]
NAMES = ("car", "truck", "cat")


MADE_FROM = label_files.provenance(np.zeros(20, int), data="twenty images")  # what the positions count in


def relabel_rows(path):
    """A relabel file's rows, without the lines that say what it was made from."""
    return [line for line in Path(path).read_text().splitlines() if not line.startswith("#")]


def small_set(flags=4, truth=True, paths=None):
    """A review set of ``flags`` flags and one unflagged image per class; image i is filled with the value i."""
    n = flags + 3
    return review.ReviewSet(
        images=np.stack([np.full((4, 4, 3), i, np.uint8) for i in range(n)]),
        index=np.arange(10, 10 + n), observed=np.array([0, 0, 2, 1, 0, 1, 2][:n]),
        suggested=np.array([1, 2, 0, 0, 0, 1, 2][:n]), score=np.linspace(0, 1, n), flagged=flags,
        class_names=NAMES, truth=np.array([1, 0, 0, 1, 0, 1, 2][:n]) if truth else None, paths=paths,
        made_from=None if paths else MADE_FROM)


def test_decisions_are_logged_undone_and_exported_as_a_relabel_file(tmp_path):
    reviewed = small_set()
    decisions = review.Decisions(tmp_path / "d.json", reviewed, tmp_path / "r.csv")
    decisions.decide(0, "accept")                # car -> truck
    decisions.decide(1, "keep")                  # stays car
    decisions.decide(2, "relabel", "truck")      # cat -> truck
    decisions.decide(3, "drop")
    decisions.decide(2, "relabel", "car")        # changed its mind
    assert decisions.undo() == 2                 # back to truck
    assert {k: (v["decision"], v["label"]) for k, v in decisions.current().items()} == {
        0: ("accept", "truck"), 1: ("keep", "car"), 2: ("relabel", "truck"), 3: ("drop", None)}
    assert relabel_rows(tmp_path / "r.csv") == ["index,label", "10,truck", "12,truck", "13,drop"]
    assert decisions.summary() == {"flags": 4, "decided": 4, "left": 0, "keep": 1, "accept": 1, "relabel": 1,
                                   "drop": 0 + 1, "right": 2}  # right: 0 (truck is truck), 1 (car is car)
    log = json.loads((tmp_path / "d.json").read_text())["log"]
    assert [e["decision"] for e in log] == ["accept", "keep", "relabel", "drop", "relabel", "undo"]
    assert all(e["time"].endswith("+00:00") for e in log)
    # the file resumes the review, and the export applies as train --relabel applies it
    again = review.Decisions(tmp_path / "d.json", reviewed, tmp_path / "r.csv")
    assert again.current() == decisions.current()
    y, record = label_files.apply_relabel_file(np.zeros(20, int), tmp_path / "r.csv", NAMES)
    assert y[10] == 1 and y[12] == 1 and y[13] == label_files.DROPPED and record["dropped"] == 1
    assert record["labels_changed"] == 2


def test_undo_walks_back_through_every_decision_and_then_has_nothing(tmp_path):
    decisions = review.Decisions(tmp_path / "d.json", small_set(), tmp_path / "r.csv")
    decisions.decide(0, "drop")
    decisions.decide(1, "accept")
    assert [decisions.undo(), decisions.undo(), decisions.undo()] == [1, 0, None]
    assert decisions.current() == {} and relabel_rows(tmp_path / "r.csv") == ["index,label"]


def test_exports_name_images_by_path_where_they_have_files(tmp_path):
    paths = tuple(f"train/x/{i}.png" for i in range(7))
    decisions = review.Decisions(tmp_path / "d.json", small_set(paths=paths), tmp_path / "r.csv")
    decisions.decide(3, "accept")
    assert relabel_rows(tmp_path / "r.csv") == ["path,label", "train/x/3.png,car"]


@pytest.mark.parametrize("item, decision, label, message", [
    (4, "keep", None, "item 4 is not one of the 4 flags"),   # an unflagged image, shown only to compare
    (-1, "keep", None, "item -1 is not one of the 4 flags"),
    (True, "keep", None, "item True is not one of the 4 flags"),
    ("0", "keep", None, "item '0' is not one of the 4 flags"),
    (0, "delete", None, "decision 'delete' is not one of keep, accept, relabel, drop"),
    (0, "relabel", "dog", "label 'dog' is not one of car, truck, cat"),
    (0, "relabel", None, "label None is not one of car, truck, cat"),
])
def test_a_bad_decision_is_refused_and_writes_nothing(tmp_path, item, decision, label, message):
    decisions = review.Decisions(tmp_path / "d.json", small_set(), tmp_path / "r.csv")
    with pytest.raises(InputError, match=message):
        decisions.decide(item, decision, label)
    assert not (tmp_path / "d.json").exists() and not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("content, message", [
    ("{not json", "cannot read the decisions"),
    (json.dumps({"review_set": "0" * 64, "log": []}), "holds decisions on other flags than this run's"),
])
def test_a_damaged_or_foreign_decisions_file_is_refused_and_kept(tmp_path, content, message):
    (tmp_path / "d.json").write_text(content)
    with pytest.raises(InputError, match=message):
        review.Decisions(tmp_path / "d.json", small_set(), tmp_path / "r.csv")
    assert (tmp_path / "d.json").read_text() == content


def test_a_decision_that_cannot_be_written_is_not_kept(tmp_path, monkeypatch):
    import errno

    decisions = review.Decisions(tmp_path / "d.json", small_set(), tmp_path / "r.csv")
    decisions.decide(0, "drop")
    before = (tmp_path / "d.json").read_bytes(), (tmp_path / "r.csv").read_bytes()

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(review.atomic, "write_json", full)
    with pytest.raises(OSError):
        decisions.decide(1, "keep")
    with pytest.raises(OSError):
        decisions.undo()
    assert list(decisions.current()) == [0]
    assert ((tmp_path / "d.json").read_bytes(), (tmp_path / "r.csv").read_bytes()) == before


def test_a_log_entry_this_tool_would_not_write_is_refused(tmp_path):
    reviewed = small_set()
    entry = {"time": "2026-12-03T00:00:00+00:00", "item": 0, "index": 10, "decision": "keep", "label": "dog"}
    (tmp_path / "d.json").write_text(json.dumps({"review_set": reviewed.digest(), "log": [entry]}))
    with pytest.raises(InputError, match="label 'dog' of a keep decision is not what this tool writes"):
        review.Decisions(tmp_path / "d.json", reviewed, tmp_path / "r.csv")


@pytest.mark.parametrize("log, message", [
    ([{"time": "2026-12-03T00:00:00+00:00", "item": 0, "decision": "drop"}], "lacks its item, decision or label"),
    ("[" * 100_000, "cannot read the decisions in .* \\(RecursionError\\)"),
])
def test_a_log_without_a_label_or_nested_deeper_than_json_reads_is_refused(tmp_path, log, message):
    reviewed = small_set()
    text = log if isinstance(log, str) else json.dumps({"review_set": reviewed.digest(), "log": log})
    (tmp_path / "d.json").write_text(text)
    with pytest.raises(InputError, match=message):
        review.Decisions(tmp_path / "d.json", reviewed, tmp_path / "r.csv")
    assert (tmp_path / "d.json").read_text() == text and not (tmp_path / "r.csv").exists()


def test_an_export_left_behind_by_its_log_is_refused_and_written_anew_when_the_log_is_read(tmp_path):
    """A review killed between writing the log and its export: train --relabel refuses the export, and the next
    review (which reads the log) writes it anew."""
    decisions = review.Decisions(tmp_path / "d.json", small_set(), tmp_path / "r.csv")
    decisions.decide(0, "drop")
    stale = (tmp_path / "r.csv").read_bytes()
    decisions.decide(1, "accept")
    (tmp_path / "r.csv").write_bytes(stale)  # as a kill between the two writes leaves them
    with pytest.raises(InputError, match="r.csv is not the export of the decisions in .*d.json .* run python -m "
                                         "experiments.review on its run directory once"):
        label_files.apply_relabel_file(np.zeros(20, int), tmp_path / "r.csv", NAMES, made_from=MADE_FROM)
    review.Decisions(tmp_path / "d.json", small_set(), tmp_path / "r.csv")
    y, record = label_files.apply_relabel_file(np.zeros(20, int), tmp_path / "r.csv", NAMES, made_from=MADE_FROM)
    assert y[10] == label_files.DROPPED and y[11] == 2 and record["labels_changed"] == 1


def _crafted(reviewed, **changed):
    arrays = dict(images=reviewed.images, index=reviewed.index, observed=reviewed.observed,
                  suggested=reviewed.suggested, score=reviewed.score, flagged=np.int64(4), class_names=np.array(NAMES))
    arrays.update(changed)
    return arrays


@pytest.mark.parametrize("changed, message", [
    ({"flagged": np.array([1, 2])}, "its flagged is not what this tool writes"),
    ({"flagged": np.array("4")}, "its flagged is not what this tool writes"),
    ({"flagged": np.float64("nan")}, "its flagged is not what this tool writes"),
    ({"index": np.int64(3)}, "its index is not what this tool writes"),
    ({"index": np.arange(14).reshape(7, 2)}, "its index is not what this tool writes"),
    ({"index": np.zeros(7, dtype=[("a", "i8")])}, "its index is not what this tool writes"),
    ({"class_names": np.array("car")}, "its class_names is not what this tool writes"),
    ({"score": np.array(["x"] * 7)}, "its score is not what this tool writes"),
    ({"score": np.full(7, np.nan)}, "its scores or indices are not what this tool writes"),
    ({"made_from": np.array("[" * 50_000)}, "is not as this tool writes it"),
])
def test_a_crafted_review_set_is_one_error(tmp_path, changed, message):
    np.savez(tmp_path / "bad.npz", **_crafted(small_set(), **changed))
    with pytest.raises(InputError, match=message):
        review.load_review_set(tmp_path / "bad.npz")


def test_a_review_set_saves_and_loads_unchanged_and_a_bad_one_is_refused(tmp_path):
    reviewed = small_set(paths=tuple(f"{i}.png" for i in range(7)))
    review.save_review_set(tmp_path / "r.npz", reviewed)
    back = review.load_review_set(tmp_path / "r.npz")
    assert back.digest() == reviewed.digest() and back.paths == reviewed.paths and back.flagged == 4
    assert np.array_equal(back.images, reviewed.images) and np.array_equal(back.truth, reviewed.truth)
    np.savez(tmp_path / "bad.npz", images=reviewed.images, index=reviewed.index, observed=reviewed.observed + 5,
             suggested=reviewed.suggested, score=reviewed.score, flagged=4, class_names=np.array(NAMES))
    with pytest.raises(InputError, match="observed labels out of the 3 classes"):
        review.load_review_set(tmp_path / "bad.npz")


def test_the_review_set_holds_the_flags_in_order_then_unflagged_images_of_each_class():
    labels = np.array([0, 0, 0, 1, 1, 2, 2, 2])
    probabilities = np.eye(3)[[1, 0, 0, 0, 1, 0, 2, 2]]
    images = np.arange(8, dtype=np.uint8)[:, None, None, None] * np.ones((1, 2, 2, 3), np.uint8)
    r = review.review_set(images, labels, probabilities, [5, 0], np.linspace(0, 1, 8), NAMES, compare=2)
    assert r.flagged == 2 and list(r.index[:2]) == [5, 0] and list(r.suggested[:2]) == [0, 1]
    assert sorted(r.index[2:]) == [1, 2, 3, 4, 6, 7]  # two unflagged of each class (only 1, 2 of car)
    assert [int(im[0, 0, 0]) for im in r.images] == list(r.index) and r.truth is None


def test_train_applies_a_review_export_dropping_images_and_says_so(image_tree, tmp_path):
    from experiments import _data, train

    root = image_tree[0]
    quick = ["--data", "benchmark", "--data-dir", str(root), "--quick"]
    drawn = _data.load(train.parse_args(quick), "benchmark")  # the quick draw, as label_noise --quick flags it
    made_from = label_files.MADE_FROM + json.dumps(_data.positions_made_from(drawn, ["train"])) + "\n"
    (tmp_path / "r.csv").write_text(made_from + "index,label\n0,truck\n1,drop\n2,drop\n")
    args = train.parse_args([*quick, "--relabel", str(tmp_path / "r.csv")])
    data, record = train.load_data(args)
    plain, _ = train.load_data(train.parse_args(quick))
    assert len(data["train"]) + len(data["validation"]) == len(plain["train"]) + len(plain["validation"]) - 2
    assert record["relabel"]["dropped"] == 2 and record["relabel"]["labels_changed"] == (plain["train"].y[0] != 1)
    assert "images dropped" in train.describe_data(record) and "2 images dropped" in train.describe_data(record)
    every = len(plain["train"]) + len(plain["validation"])
    (tmp_path / "all.csv").write_text(made_from + "index,label\n" + "".join(f"{i},drop\n" for i in range(every)))
    with pytest.raises(InputError, match="drops every image of train"):
        _data.load(train.parse_args([*quick, "--relabel", str(tmp_path / "all.csv")]), "benchmark")
    # another draw of the benchmark (--seed 1): the positions name other images, and the file is refused
    with pytest.raises(InputError, match="r.csv was made from .*, not from these training images: .* its positions "
                                         "would name other images"):
        train.load_data(train.parse_args([*quick, "--seed", "1", "--relabel", str(tmp_path / "r.csv")]))


# the server, without a browser
@pytest.fixture()
def server(tmp_path):
    from keras_apml.review_server import ReviewServer

    decisions = review.Decisions(tmp_path / "d.json", small_set(), tmp_path / "r.csv")
    running = ReviewServer(decisions, port=0, token="secret-token")
    thread = threading.Thread(target=running.serve_forever, daemon=True)
    thread.start()
    yield running
    running.shutdown()
    running.server_close()


def request(server, path, body=None, token="secret-token", header=False):
    """``(status, body)`` of one request to the server."""
    host, port = server.server_address[:2]
    url = f"http://{host}:{port}{path}"
    headers = {"Content-Type": "application/json"}
    if token and header:
        headers["Authorization"] = f"token {token}"
    elif token:
        url += ("&" if "?" in path else "?") + f"token={token}"
    data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, data=data, headers=headers), timeout=10) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def test_the_server_listens_on_localhost_and_answers_only_its_token(server):
    assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    assert server.url.endswith("/?token=secret-token")
    assert request(server, "/", token=None)[0] == 403
    assert request(server, "/", token="secret-tokem")[0] == 403
    assert request(server, "/api/state", token="")[0] == 403
    assert request(server, "/image/0", token=None)[0] == 403
    assert request(server, "/api/decide", {"item": 0, "decision": "drop"}, token="wrong", header=True)[0] == 403
    assert not (server.decisions.path).exists()
    status, page = request(server, "/")
    assert status == 200 and b"Review flagged labels" in page
    status, png = request(server, "/image/6", header=True)
    assert status == 200 and png.startswith(b"\x89PNG")


@pytest.mark.parametrize("path", ["/image/7", "/image/-1", "/image/1e3", "/image/%2e%2e/%2e%2e/etc/passwd",
                                  "/image/../../etc/passwd", "/../../etc/passwd", "/etc/passwd", "/image/",
                                  "/image/%EF%BC%90"])
def test_no_path_of_a_request_reaches_the_file_system(server, path):
    status, body = request(server, path)
    assert status == 404 and b"root:" not in body


def test_the_truth_is_sent_only_when_asked_for(server):
    state = json.loads(request(server, "/api/state")[1])
    assert state["class_names"] == list(NAMES) and len(state["items"]) == 7 and state["has_truth"]
    assert "truth" not in state["items"][0] and [i["flagged"] for i in state["items"]].count(True) == 4
    assert [i["truth"] for i in json.loads(request(server, "/api/state?truth=1")[1])["items"]] == [1, 0, 0, 1, 0, 1, 2]


@pytest.mark.parametrize("body, message", [
    ({"item": 9, "decision": "keep"}, b"item 9 is not one of the 4 flags"),
    ({"item": 0, "decision": "rm -rf"}, b"decision 'rm -rf' is not one of"),
    (b"{not json", b"the body is not JSON"),
    (b"[1, 2]", b"the body is not a JSON object"),
    (b"x" * 5000, b"a body of 0..4096 bytes is expected"),
    (b"[" * 4000, b"the body is not JSON"),  # deeper than the JSON parser recurses
])
def test_a_bad_decision_request_is_refused_and_changes_nothing(server, body, message):
    status, answer = request(server, "/api/decide", body, header=True)
    assert status == 400 and message in answer
    assert not server.decisions.path.exists()


def test_a_decision_the_server_cannot_write_is_answered_500_and_not_kept(server, monkeypatch):
    import errno

    def full(path, obj):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(review.atomic, "write_json", full)
    status, answer = request(server, "/api/decide", {"item": 0, "decision": "drop"}, header=True)
    assert status == 500 and json.loads(answer) == {"error": "the decisions could not be written: No space left on "
                                                             "device"}
    assert server.decisions.current() == {}


def test_a_decision_request_is_saved_before_it_is_answered(server):
    status, answer = request(server, "/api/decide", {"item": 1, "decision": "relabel", "label": "cat"}, header=True)
    assert status == 200 and json.loads(answer)["summary"]["relabel"] == 1
    assert server.decisions.path.is_file() and "11,cat" in server.decisions.export_path.read_text()
    assert json.loads(request(server, "/api/undo", {}, header=True)[1])["undone"] == 1


# the command: refusals, then the page in a real browser
def review_command(run_dir, *flags):
    return subprocess.Popen([sys.executable, "-m", "experiments.review", str(run_dir), "--no-browser", *flags],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def chromium(tmp_path):
    """Debian's headless Chromium, driven by Selenium through its driver's path, with a profile in ``tmp_path``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--window-size=1280,900",
                 f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    return webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))


@pytest.mark.slow
def test_keys_faster_than_the_server_each_decide_the_card_current_when_pressed(tmp_path, monkeypatch):
    """20 K presses sent at once decide 20 cards, each the card current at its press, and the log agrees; K then
    A at once decide two cards, not one twice; each waits for a server slower than the keys."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    from keras_apml.review_server import ReviewServer

    n = 30
    reviewed = review.ReviewSet(
        images=np.stack([np.full((8, 8, 3), 7 * i, np.uint8) for i in range(n + 3)]), index=np.arange(n + 3),
        observed=np.array([0] * n + [0, 1, 2]), suggested=np.array([1] * n + [0, 1, 2]),
        score=np.linspace(0, 1, n + 3), flagged=n, class_names=NAMES, made_from=MADE_FROM)
    decisions = review.Decisions(tmp_path / "d.json", reviewed, tmp_path / "r.csv")
    slow = decisions.decide

    def decide_slowly(*args):  # a server slower than the keys, as a loaded machine's
        time.sleep(0.05)
        return slow(*args)

    monkeypatch.setattr(decisions, "decide", decide_slowly)
    server = ReviewServer(decisions, port=0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = chromium(tmp_path)
    try:
        wait = WebDriverWait(browser, 30)
        browser.get(server.url)
        wait.until(lambda b: b.find_element(By.ID, "status").text == "ready")
        assert "its label → the suggested label" in browser.find_element(By.ID, "legend").text
        body = browser.find_element(By.TAG_NAME, "body")
        body.send_keys("k" * 20)
        assert browser.find_element(By.CSS_SELECTOR, ".card.current").get_attribute("data-item") == "20"
        wait.until(lambda b: b.find_element(By.ID, "counter").text == f"{n - 20} of {n} flags left")
        body.send_keys("ka")
        wait.until(lambda b: b.find_element(By.ID, "counter").text == f"{n - 22} of {n} flags left")
        log = json.loads((tmp_path / "d.json").read_text())["log"]
        assert [(e["item"], e["decision"]) for e in log] == [(i, "keep") for i in range(20)] + [(20, "keep"),
                                                                                               (21, "accept")]
        badges = [c.find_element(By.CSS_SELECTOR, ".badge").text for c in browser.find_elements(By.CSS_SELECTOR,
                                                                                                ".card")]
        assert badges[:23] == ["keep: car"] * 21 + ["accept: truck", ""]
        # the current image, large, beside unflagged images of its label and of the suggestion
        assert browser.find_element(By.ID, "big-labels").text == "#23: car → truck"
        assert browser.find_element(By.ID, "big").size["width"] >= 256
        assert len(browser.find_elements(By.CSS_SELECTOR, "#near-observed img")) == 1
        assert browser.find_element(By.ID, "near-suggested-title").text == "unflagged images labelled truck"
        browser.save_screenshot(str(tmp_path / "page.png"))
    finally:
        browser.quit()
        server.shutdown()
        server.server_close()


def snapshot(directory):
    return {str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.slow
@pytest.mark.xdist_group("label_noise")
def test_review_refuses_what_is_not_a_finished_label_noise_run(quick_run, tmp_path, capsys):
    status, finished = quick_run("label_noise")
    assert status == 0
    unfinished = tmp_path / "unfinished"
    shutil.copytree(finished, unfinished)
    metrics = json.loads((unfinished / "metrics.json").read_text())
    del metrics["finished"]
    (unfinished / "metrics.json").write_text(json.dumps(metrics))
    older = tmp_path / "older"
    shutil.copytree(finished, older)
    (older / "review.npz").unlink()
    other = tmp_path / "other"
    other.mkdir()
    (other / "metrics.json").write_text(json.dumps({"experiment": "train", "finished": "2026-12-03"}))
    crafted, nested, unlabelled = tmp_path / "crafted", tmp_path / "nested", tmp_path / "unlabelled"
    for copy in (crafted, nested, unlabelled):
        shutil.copytree(finished, copy)
    saved = dict(np.load(finished / "review.npz"))
    np.savez(crafted / "review.npz", **{**saved, "index": saved["index"][:, None]})  # 2-D: once served, then a crash
    (nested / "review_decisions.json").write_text("[" * 100_000)
    digest = review.load_review_set(finished / "review.npz").digest()
    (unlabelled / "review_decisions.json").write_text(json.dumps({"review_set": digest, "log": [
        {"time": "2026-12-08T00:00:00+00:00", "item": 0, "decision": "drop"}]}))
    rows = [([str(tmp_path / "missing")], "is not a directory: give a label_noise run directory"),
            ([str(other)], "is not a label_noise run \\(experiment 'train'\\)"),
            ([str(unfinished)], "holds a label_noise run that has not finished"),
            ([str(older)], "has no review.npz: it was made before reviews were saved"),
            ([str(crafted)], "review.npz: its index is not what this tool writes"),
            ([str(nested)], "cannot read the decisions in .*review_decisions.json \\(RecursionError\\)"),
            ([str(unlabelled)], "review_decisions.json: an entry of its log lacks its item, decision or label"),
            ([str(finished), "--port", "70000"], "argument --port: expected a port in 0..65535, got '70000'"),
            ([str(finished), "--host", "256.1.1.1"], "cannot listen on 256.1.1.1:0")]
    import re

    from experiments import review as command

    for argv, message in rows:
        before = {d: snapshot(d) for d in (finished, unfinished, older, crafted, nested, unlabelled)}
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            from experiments import _contract
            _contract.run(command.main, [*argv, "--no-browser"], tensorflow=False)
        err = capsys.readouterr().err.splitlines()
        assert e.value.code == 2 and len(err) == 1 and err[0].startswith("error: ") and re.search(message, err[0]), err
        assert {d: snapshot(d) for d in before} == before


@pytest.mark.slow
@pytest.mark.xdist_group("label_noise")
def test_the_page_in_chromium_decides_by_keyboard_keeps_decisions_over_a_reload_and_exports(
        quick_run, image_tree, tmp_path, capsys):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    status, finished = quick_run("label_noise")
    assert status == 0
    run = tmp_path / "run"
    shutil.copytree(finished, run)
    study_files = snapshot(run)
    server = review_command(run)
    url = server.stdout.readline().strip()
    assert url.startswith("http://127.0.0.1:") and "/?token=" in url
    from experiments import _contract
    from experiments import review as command

    capsys.readouterr()
    with pytest.raises(SystemExit) as second:  # a second server would keep its own log: refused
        _contract.run(command.main, [str(run), "--no-browser"], tensorflow=False)
    assert second.value.code == 2 and capsys.readouterr().err.splitlines() == [
        f"error: another process is writing run directory {run}; one review of a run at a time: use the page that "
        "review printed, or stop it first"]
    browser = chromium(tmp_path)
    try:
        wait = WebDriverWait(browser, 20)
        browser.get(url)
        wait.until(lambda b: b.find_element(By.ID, "status").text == "ready")
        reviewed = review.load_review_set(run / "review.npz")
        assert len(browser.find_elements(By.CSS_SELECTOR, ".card")) == min(48, reviewed.flagged)
        body = browser.find_element(By.TAG_NAME, "body")
        expected = {}
        for key, decision in (("a", "accept"), ("k", "keep"), ("d", "drop"), ("3", None)):
            item = int(browser.find_element(By.CSS_SELECTOR, ".card.current").get_attribute("data-item"))
            body.send_keys(key)
            wait.until(lambda b, i=item: b.find_element(By.ID, "status").text.startswith(f"saved: #{i + 1} "))
            if decision is None:  # the third class, cat: as the label, as the suggestion, or another
                decision = "keep" if reviewed.observed[item] == 2 else "accept" if reviewed.suggested[item] == 2 \
                    else "relabel"
            expected[item] = decision
        body.send_keys("d")  # one more, then undone
        wait.until(lambda b: "drop" in b.find_element(By.ID, "status").text and
                   b.find_element(By.ID, "counter").text.startswith(f"{reviewed.flagged - 5} of"))
        body.send_keys("u")
        wait.until(lambda b: b.find_element(By.ID, "status").text.startswith("undone: #"))
        browser.refresh()
        wait.until(lambda b: b.find_element(By.ID, "status").text == "ready")
        assert browser.find_element(By.ID, "counter").text == f"{reviewed.flagged - 4} of {reviewed.flagged} flags left"
        badges = {int(c.get_attribute("data-item")): c.find_element(By.CSS_SELECTOR, ".badge").text
                  for c in browser.find_elements(By.CSS_SELECTOR, ".card")}
        assert {i: b.split(":")[0] for i, b in badges.items() if b} == expected
        browser.find_element(By.ID, "truth").click()
        wait.until(lambda b: " decisions right" in b.find_element(By.ID, "right").text)
        right = review.Decisions(run / "review_decisions.json", reviewed, tmp_path / "unused.csv").summary()["right"]
        assert browser.find_element(By.ID, "right").text == f"{right} of 4 decisions right"
    finally:
        browser.quit()
        server.send_signal(signal.SIGINT)
        _, err = server.communicate(timeout=20)
    assert server.returncode == 0 and err.splitlines() == [f"review stopped: 4 of {reviewed.flagged} flags decided, "
                                                           f"every one saved in {run / 'review_decisions.json'}"]
    saved = json.loads((run / "review_decisions.json").read_text())
    assert [e["decision"] for e in saved["log"]][-2:] == ["drop", "undo"]
    # the export equals the relabel file the decisions mean, and train applies it
    rows = []
    for item in sorted(expected):
        label = {"accept": reviewed.suggested[item], "keep": reviewed.observed[item], "drop": -1,
                 "relabel": 2}[expected[item]]
        if label != reviewed.observed[item]:
            rows.append(f"{reviewed.index[item]},{'drop' if label == -1 else NAMES[label]}")
    assert relabel_rows(run / "reviewed_relabel.csv") == ["index,label", *sorted(
        rows, key=lambda r: int(r.split(",")[0]))]
    after = snapshot(run)
    assert {k: v for k, v in after.items() if k in study_files} == study_files  # the study's files untouched
    assert set(after) - set(study_files) == {"review_decisions.json", "reviewed_relabel.csv"}
    out = tmp_path / "train"
    assert run_command("train", ["--data", "benchmark", "--data-dir", str(image_tree[0]), "--out", str(out),
                                 "--quick", "--quiet",
                                 "--relabel", str(run / "reviewed_relabel.csv")]) == 0
    dropped = sum(r.endswith(",drop") for r in rows)
    changed = len(rows) - dropped
    assert (f"{changed} label{'s' * (changed != 1)} changed, {dropped} image{'s' * (dropped != 1)} dropped"
            in (out / "report.md").read_text())
