"""The researcher's screens over HTTP: the run launcher and its estimate, the runs list and a run's page with
pause / resume / cancel, a dialogue with every decision, its LLM calls on demand, stepping by hand, and the
dialogue list's filters. (Live updates: test_consumers.py; the same pages in a browser: tests/e2e.)"""

from __future__ import annotations

import html
import json
import re
from html.parser import HTMLParser

import pytest
from django.urls import reverse

from dialogues.engine.config import Variant
from dialogues.engine.rating import Rating, RatingSample, rating_rules, rating_rules_text
from dialogues.library.models import Task
from dialogues.runs.forms import RunLaunchForm
from dialogues.runs.models import Dialogue, DialogueStatus, LLMCall, Run, RunStatus, StepRating, Turn
from dialogues.runs.selectors import run_shown_status
from dialogues.runs.views import SIMULATED
from evaluation.models import EpisodeScore, RelevanceScore
from omega_web.roles import Role
from tests.factories import DialogueFactory, created_run, simulated_run

pytestmark = pytest.mark.django_db(transaction=True)

ROOF = "library_roof_fund"  # the simulated expert takes both of its demo tasks into the negotiation workflow
HOSTILE = (
    '<script>alert("x")</script><img src=x onerror=alert(1)><a href="javascript:alert(2)">go</a>'
    "\" onmouseover=\"alert(3)' onfocus='alert(4)"
)


class _Active(HTMLParser):
    """Markup in a page that would run: a handler attribute, a javascript: URL, a script with the hostile text."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[str] = []
        self._script = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._script = tag == "script"
        for name, value in attrs:
            if name.startswith("on"):
                self.found.append(f"<{tag} {name}=…>")
            if name in {"href", "src", "action", "formaction"} and (value or "").strip().lower().startswith(
                "javascript:"
            ):
                self.found.append(f"<{tag} {name}={value}>")
        if tag == "img" and dict(attrs).get("src") == "x":
            self.found.append("<img src=x>")

    def handle_data(self, data: str) -> None:
        if self._script and "alert" in data:
            self.found.append(f"<script>{data[:40]}")


def active_markup(html: str) -> list[str]:
    parser = _Active()
    parser.feed(html)
    return parser.found


def launch_data(**changes) -> dict[str, str]:
    """The launcher's form as a browser sends it untouched: every initial value (the paper's defaults)."""
    form = RunLaunchForm(backends={SIMULATED: "simulated"})
    data = {}
    for name, bound in form.fields.items():
        value = form.get_initial_for_field(bound, name)
        if value is None or value is False:
            continue
        data[name] = "on" if value is True else str(value)
    data.update({k: str(v) for k, v in changes.items()})
    return data


@pytest.fixture
def finished_run(demo_tasks) -> Run:
    return simulated_run(Task.objects.all(), name="finished")


def nsi_dialogue(run: Run) -> Dialogue:
    return run.dialogues.filter(nsi_used=True).order_by("id").first()


# --- the launcher ----------------------------------------------------------------------------------------


def test_launcher_offers_the_paper_defaults_and_only_the_simulated_expert_without_a_model(demo_tasks, client_for):
    page = client_for(Role.RESEARCHER).get(reverse("run_new"))
    assert page.status_code == 200
    text = page.content.decode()
    assert 'name="judge_samples" value="5"' in text and 'name="nsi_goal_c_max" value="7.5"' in text
    assert "Simulated expert" in text and "only the simulated expert is offered" in text


def test_estimate_follows_the_selection_before_anything_starts(demo_tasks, client_for):
    client = client_for(Role.RESEARCHER)
    answer = client.post(reverse("run_estimate"), {**launch_data(), "q": ROOF}, headers={"HX-Request": "true"})
    text = answer.content.decode()
    assert answer.status_code == 200 and text.lstrip().startswith('<section id="estimate"')
    assert "<strong>2</strong> tasks selected, 2 hard" in text
    assert re.search(r"~\d+ LLM requests", text)
    assert Run.objects.count() == 0


def test_a_random_sample_is_reproducible_from_its_seed(demo_tasks, client_for):
    client = client_for(Role.RESEARCHER)

    def chosen(seed: int) -> list[str]:
        answer = client.post(reverse("run_estimate"), {**launch_data(), "sample": "3", "sample_seed": str(seed)})
        return re.findall(r"<li>(.*?) <span", answer.content.decode())

    assert len(chosen(1)) == 3
    assert chosen(1) == chosen(1)
    assert any(chosen(1) != chosen(seed) for seed in range(2, 8))


def test_launching_creates_the_run_with_the_chosen_parameters(demo_tasks, client_for):
    data = launch_data(q=ROOF, judge_samples=3, attempts=2, nsi_goal_c_max=7, name="by hand", start_paused="on")
    answer = client_for(Role.RESEARCHER).post(reverse("run_new"), data)
    run = Run.objects.get()
    assert answer.status_code == 302 and answer["Location"] == reverse("run_detail", args=[run.pk])
    assert run.name == "by hand" and run.simulated and run.tasks.count() == 2
    assert run.config["judge_samples"] == 3 and run.config["attempts"] == 2 and run.config["nsi_goal_c_max"] == 7
    assert set(run.dialogues.values_list("status", flat=True)) == {DialogueStatus.PAUSED}


def test_launching_without_pausing_runs_the_dialogues(demo_tasks, client_for):
    data = launch_data(q="field_trip_seats", judge_samples=3)
    client_for(Role.RESEARCHER).post(reverse("run_new"), data)
    run = Run.objects.get()
    assert run.dialogues.filter(status=DialogueStatus.FINISHED).exists()  # the eager worker stepped it


def test_a_bad_parameter_is_named_and_nothing_starts(demo_tasks, client_for):
    answer = client_for(Role.RESEARCHER).post(reverse("run_new"), launch_data(judge_samples=0, q=ROOF))
    assert answer.status_code == 400
    assert "greater than or equal to 1" in answer.content.decode()
    assert Run.objects.count() == 0


def test_a_selection_without_tasks_is_refused(demo_tasks, client_for):
    answer = client_for(Role.RESEARCHER).post(reverse("run_new"), launch_data(q="no such codename anywhere"))
    assert answer.status_code == 400 and "No task matches the selection." in answer.content.decode()
    assert Run.objects.count() == 0


@pytest.mark.parametrize(
    ("sample", "reason"),
    [
        pytest.param("0", "A sample needs at least 1 task; leave it empty to take every matching task.", id="zero"),
        pytest.param("-3", "A sample needs at least 1 task", id="negative"),
        pytest.param("3", "A sample of 3 is more than the 2 tasks selected: choose 1 to 2", id="more-than-selected"),
        pytest.param("1000000", "A sample of 1000000 is more than the 2 tasks selected", id="a-million"),
    ],
)
def test_a_sample_outside_one_to_the_selection_is_refused_with_the_reason(demo_tasks, client_for, sample, reason):
    client = client_for(Role.RESEARCHER)
    data = {**launch_data(), "q": ROOF, "sample": sample}
    answer = client.post(reverse("run_new"), data)
    assert answer.status_code == 400 and reason in answer.content.decode()
    assert "Nothing was started." in answer.content.decode()
    estimate = client.post(reverse("run_estimate"), data).content.decode()
    assert reason in estimate and "Estimate:" not in estimate  # the panel says why, before anything is sent
    assert Run.objects.count() == 0


@pytest.mark.parametrize("sample", ["1", "2"])
def test_a_sample_from_one_to_the_selection_is_taken(demo_tasks, client_for, sample):
    answer = client_for(Role.RESEARCHER).post(reverse("run_new"), {**launch_data(), "q": ROOF, "sample": sample,
                                                                   "start_paused": "on"})  # fmt: skip
    assert answer.status_code == 302 and Run.objects.get().tasks.count() == int(sample)


def test_a_launch_over_the_threshold_asks_to_confirm_with_the_estimate(demo_tasks, client_for, settings):
    settings.OMEGA_LAUNCH_CONFIRM_TASKS = 5
    client = client_for(Role.RESEARCHER)
    data = launch_data(name="all of them", start_paused="on")  # the 7 demo tasks
    estimate = client.post(reverse("run_estimate"), data).content.decode()
    assert "7 tasks, more than 5" in estimate and "asked to confirm" in estimate
    asked = client.post(reverse("run_new"), data)
    text = asked.content.decode()
    assert asked.status_code == 200 and Run.objects.count() == 0
    assert "Start this run?" in text and "7 tasks, more than 5" in text
    requests = re.search(r'class="confirm-requests">~([\d,]+)<', text).group(1)
    tokens = re.search(r'class="confirm-tokens">~([\d,]+) ', text).group(1)
    shown = client.post(reverse("run_estimate"), data).content.decode()
    assert f"~{requests} LLM requests" in shown  # the same estimate as the launcher's
    assert int(tokens.replace(",", "")) > 100_000
    assert '<input type="hidden" name="name" value="all of them">' in text  # every choice carried along
    # back to the launcher: everything as chosen, nothing started
    back = client.post(reverse("run_new"), {**data, "edit": "1"})
    assert back.status_code == 200 and 'value="all of them"' in back.content.decode() and Run.objects.count() == 0
    # a confirmation for another selection is asked again
    again = client.post(reverse("run_new"), {**data, "confirm": "6"})
    assert "Start this run?" in again.content.decode() and Run.objects.count() == 0
    confirmed = client.post(reverse("run_new"), {**data, "confirm": "7"})
    run = Run.objects.get()
    assert confirmed.status_code == 302 and run.name == "all of them" and run.tasks.count() == 7


def test_a_launch_over_the_token_threshold_asks_too_and_a_small_one_does_not(demo_tasks, client_for, settings):
    client = client_for(Role.RESEARCHER)
    settings.OMEGA_LAUNCH_CONFIRM_TOKENS = 1000
    asked = client.post(reverse("run_new"), launch_data(q=ROOF, start_paused="on")).content.decode()
    assert "Start this run?" in asked and re.search(r"~[\d,]+ tokens, more than 1,000", asked)
    settings.OMEGA_LAUNCH_CONFIRM_TOKENS = 1_000_000  # the default: two tasks start at once
    assert client.post(reverse("run_new"), launch_data(q=ROOF, start_paused="on")).status_code == 302


# --- runs ------------------------------------------------------------------------------------------------


def test_runs_list_and_run_page_show_progress_counted_from_rows(finished_run, client_for):
    client = client_for(Role.VIEWER)
    turns = Turn.objects.filter(dialogue__run=finished_run).count()
    listing = client.get(reverse("run_list")).content.decode()
    assert f'id="run-row-{finished_run.pk}"' in listing
    assert f"<dt>turns</dt><dd>{turns}</dd>" in listing
    assert "New run" not in listing and "Pause" not in listing  # a viewer sees no controls
    page = client.get(reverse("run_detail", args=[finished_run.pk])).content.decode()
    assert f"{finished_run.tasks.count()} / {finished_run.tasks.count()}" in page
    assert page.count('href="/dialogues/') >= finished_run.dialogues.count()


def test_pause_resume_cancel_a_run(demo_tasks, client_for):
    run = created_run(Task.objects.all()[:2], name="r", start_paused=True)
    client = client_for(Role.RESEARCHER)
    hx = {"HX-Request": "true"}
    answer = client.post(reverse("run_action", args=[run.pk, "pause"]), headers=hx)
    assert answer.status_code == 200 and f'id="run-progress-{run.pk}"' in answer.content.decode()
    # out of band, morphed by id like the live updates; the buttons themselves swap nothing (ADR 0026)
    assert 'hx-swap-oob="morph"' in answer.content.decode() and 'hx-swap="none"' in answer.content.decode()
    assert Run.objects.get(pk=run.pk).status == RunStatus.PAUSED
    row = client.post(reverse("run_action", args=[run.pk, "resume"]), {"from": "list"}, headers=hx)
    assert f'id="run-row-{run.pk}"' in row.content.decode()
    assert Run.objects.get(pk=run.pk).status in (RunStatus.RUNNING, RunStatus.FINISHED)
    client.post(reverse("run_action", args=[run.pk, "cancel"]))
    assert Run.objects.get(pk=run.pk).status in (RunStatus.CANCELLED, RunStatus.FINISHED)
    assert client.post(reverse("run_action", args=[run.pk, "explode"])).status_code == 404
    viewer = client_for(Role.ANNOTATOR)
    assert viewer.post(reverse("run_action", args=[run.pk, "pause"])).status_code == 403


@pytest.mark.parametrize(
    ("dialogues", "shown"),
    [
        pytest.param({"paused": 2}, "paused", id="every-dialogue-waits-for-a-hand"),
        pytest.param({"paused": 1, "finished": 1}, "paused", id="the-rest-settled"),
        pytest.param({"paused": 1, "running": 1}, "running", id="one-still-moves"),
        pytest.param({"paused": 1, "pending": 1}, "running", id="one-still-to-dispatch"),
        pytest.param({"finished": 2}, "running", id="nothing-paused"),
    ],
)
def test_a_running_run_whose_dialogues_all_wait_for_a_hand_shows_as_paused(dialogues, shown):
    assert run_shown_status(RunStatus.RUNNING, dialogues) == shown
    for stored in (RunStatus.PAUSED, RunStatus.FINISHED, RunStatus.CANCELLED):
        assert run_shown_status(stored, dialogues) == stored  # only a running run is ever shown otherwise


def test_a_run_stepped_by_hand_is_shown_paused_and_resumes_by_the_button(demo_tasks, client_for):
    run = created_run(Task.objects.all()[:2], name="by hand", start_paused=True)
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING  # as stored: its dialogues may be stepped
    client = client_for(Role.RESEARCHER)
    for page in (client.get(reverse("run_detail", args=[run.pk])), client.get(reverse("run_list"))):
        text = page.content.decode()
        assert '<span class="badge status-paused">paused</span>' in text and "status-running" not in text
        assert "every unfinished dialogue waits for a step by hand" in text
        assert ">Resume</button>" in text and ">Pause</button>" not in text
    answer = client.post(reverse("run_action", args=[run.pk, "resume"]), headers={"HX-Request": "true"})
    assert answer.status_code == 200 and 'data-status="paused"' not in answer.content.decode()
    assert not run.dialogues.filter(status=DialogueStatus.PAUSED).exists()  # they run (the eager worker ran them)


# --- one dialogue ----------------------------------------------------------------------------------------


def test_dialogue_page_shows_every_decision(finished_run, client_for):
    dialogue = nsi_dialogue(finished_run)
    page = client_for(Role.VIEWER).get(reverse("dialogue_detail", args=[dialogue.pk]))
    assert page.status_code == 200
    text = page.content.decode()
    turns = list(dialogue.turns.order_by("index"))
    assert dialogue.turns_count == len(turns) and text.count('class="turn speaker-') == len(turns)
    assert "Simulated expert." in text  # the banner
    assert text.count(">private<") >= 2  # both private goals are marked
    assert re.search(r"NSI · (resource assessment|assessment of difference|initial proposal)", text)
    assert 'class="badge branch-NSI forced"' in text or "forced leave" in text
    assert '<mark class="del">' in text and '<mark class="ins">' in text  # draft beside the style-transferred text
    assert "Utility · own U" in text and "guessed other U" in text and "Raw JSON" in text
    ratings = StepRating.objects.filter(dialogue=dialogue)
    assert text.count('<details class="sample">') == sum(len(r.samples) for r in ratings)
    assert "votes to end" in text or "go on" in text
    # LLM calls are listed but their prompts load only when opened
    call = LLMCall.objects.filter(dialogue=dialogue).first()
    assert reverse("dialogue_call", args=[dialogue.pk, call.pk]) in text
    assert call.messages[0]["content"][:80] not in text
    # the chart: both series, the run's thresholds, the strategy shading
    figure = json.loads(re.search(r'data-figure="([^"]*)"', text).group(1).replace("&quot;", '"'))
    names = [trace["name"] for trace in figure["data"]]
    assert "goal_c (now)" in names and "goal_p (predicted)" in names and "NSI if goal_c ≤ 7.5" in names
    assert len(figure["layout"]["shapes"]) == len(turns)
    # attempts of the task are tabs, this one marked
    attempts = finished_run.dialogues.filter(task=dialogue.task).count()
    if attempts > 1:
        assert text.count('aria-current="page"') >= 1 and text.count("Attempt ") >= attempts


def test_a_rated_turn_explains_the_scores(finished_run, client_for):
    rating = StepRating.objects.filter(dialogue__run=finished_run, closing=False).select_related("turn").first()
    text = client_for(Role.VIEWER).get(reverse("dialogue_detail", args=[rating.dialogue_id])).content.decode()
    assert f"goal_c <strong>{rating.goal_c:.2f}</strong>" in text
    assert f"{rating.requested} samples asked, {rating.returned} returned, {rating.valid} valid" in text
    first = rating.samples[0]
    assert f"Sample 1 · goal_c {first['goal_c']} · goal_p {first['goal_p']}" in text
    assert first["analyses"]["step1"] in text


def test_the_rating_help_text_is_the_rating_codes_own_description(finished_run, client_for):
    """The panel's text is rating_rules_text(), and that text describes what the code computes: the steps it
    names for goal_c and goal_p give the samples' scores, and one vote to end is enough (issue 28)."""
    rating = StepRating.objects.filter(dialogue__run=finished_run, closing=False).first()
    text = client_for(Role.VIEWER).get(reverse("dialogue_detail", args=[rating.dialogue_id])).content.decode()
    shown = re.search(r'<p class="muted small rating-rules" data-rating-rules>([^<]*)</p>', text)
    assert shown and shown.group(1).startswith(html.escape(rating_rules_text()))
    rules = rating_rules()
    scores = {"step1": 3, "step2": 8, "step3": 5, "step4": 10, "step5": 1}
    for key in ("goal_c", "goal_p"):
        formula = re.search(r"\(([^)]*)\) / (\d+)", rules[key])
        named = [part.strip() for part in formula.group(1).split("+")]
        described = sum(scores[s] for s in named) / int(formula.group(2))
        assert getattr(RatingSample(scores, {}), key) == described, key
    assert "any single valid sample" in rules["end"] and "step5 = 0" in rules["end"]
    one_vote = Rating((RatingSample(scores, {}), RatingSample({**scores, "step5": 0}, {})), requested=2)
    assert one_vote.terminate
    # the chart's hover names every score: no bare "7 7 8 8 1"
    figure = json.loads(html.unescape(re.search(r'data-figure="([^"]*)"', text).group(1)))
    hover = next(row for trace in figure["data"] for row in (trace.get("customdata") or []) if row[2])[2]
    named = r"sample 1: step1 \d+ · step2 \d+ → goal_c [\d.]+; step3 \d+ · step4 \d+ → goal_p [\d.]+; step5"
    assert re.match(named, hover), hover


def test_llm_and_uploaded_text_is_escaped_everywhere(finished_run, client_for):
    dialogue = nsi_dialogue(finished_run)
    turn = dialogue.turns.exclude(draft="").first()
    turn.argument = f"Fine. {HOSTILE}"
    turn.draft = f"Draft {HOSTILE}"
    turn.reason = HOSTILE
    turn.own_utility = {**turn.own_utility, "matters": [{**turn.own_utility["matters"][0], "matter": HOSTILE}]}
    turn.save()
    rating = StepRating.objects.filter(dialogue=dialogue).first()
    rating.rejected = [{"reason": HOSTILE, "raw": HOSTILE}]
    rating.save()
    task = dialogue.task
    task.scenario.agent1_goal = HOSTILE
    task.scenario.save()
    call = LLMCall.objects.filter(dialogue=dialogue).first()
    call.responses = [HOSTILE]
    call.messages = [{"role": "user", "content": HOSTILE}]
    call.save()
    # the judges' words too: a relevance justification and a SOTOPIA-EVAL reasoning
    RelevanceScore.objects.create(turn=turn, dialogue=dialogue, speaker=turn.speaker, judge_model=HOSTILE[:100],
                                  prompt_version="v1", prompt_sha256="s", score=0.5,
                                  samples=[{"score": 0.5, "justification": HOSTILE}])  # fmt: skip
    EpisodeScore.objects.create(dialogue=dialogue, speaker=0, judge_model="j", prompt_version="v2", prompt_sha256="s",
                                bel=1, rel=0, kno=0, sec=0, soc=0, fin=0, goal=5, overall=6 / 7,
                                samples=[{"BEL": {"score": 1, "reasoning": HOSTILE}}])  # fmt: skip
    client = client_for(Role.VIEWER)
    for url in (
        reverse("dialogue_detail", args=[dialogue.pk]),
        reverse("dialogue_call", args=[dialogue.pk, call.pk]),
        reverse("dialogue_list") + "?text=Fine",
        reverse("dialogue_sif", args=[dialogue.pk]),
        reverse("run_report", args=[dialogue.run_id]),
        reverse("task_detail", args=[task.pk]),
    ):
        text = client.get(url).content.decode()
        assert active_markup(text) == [], url
    assert "&lt;script&gt;alert" in client.get(reverse("dialogue_detail", args=[dialogue.pk])).content.decode()


def test_an_llm_call_loads_in_full_when_opened(finished_run, client_for):
    dialogue = nsi_dialogue(finished_run)
    call = LLMCall.objects.filter(dialogue=dialogue, purpose__startswith="nsi").first()
    client = client_for(Role.VIEWER)
    text = client.get(reverse("dialogue_call", args=[dialogue.pk, call.pk])).content.decode()
    assert "Prompt" in text and "Raw response" in text and call.purpose in text
    assert call.responses[0][:60].replace('"', "&quot;") in text
    other = finished_run.dialogues.exclude(pk=dialogue.pk).first()
    assert client.get(reverse("dialogue_call", args=[other.pk, call.pk])).status_code == 404


def test_an_llm_call_says_what_was_adapted_for_the_server_and_how_its_answers_ended(finished_run, client_for):
    dialogue = nsi_dialogue(finished_run)
    call = LLMCall.objects.filter(dialogue=dialogue, purpose="rating").first()
    call.finish_reasons = ["stop", "length"]
    call.params = {**call.params, "adapted": ["n = 5 as 3 requests of at most 2: the server takes at most n = 2"]}
    call.save()
    text = client_for(Role.VIEWER).get(reverse("dialogue_call", args=[dialogue.pk, call.pk])).content.decode()
    assert "n = 5 as 3 requests of at most 2: the server takes at most n = 2" in text
    assert 'stop · <span class="bad">cut off at max_tokens</span>' in text


def test_step_by_hand_then_run_to_end(demo_tasks, client_for):
    run = created_run([Task.objects.filter(scenario__codename="field_trip_seats").first()], name="hand",
                      start_paused=True)  # fmt: skip
    dialogue = run.dialogues.get()
    client = client_for(Role.RESEARCHER)
    hx = {"HX-Request": "true"}
    for expected in (1, 2):
        answer = client.post(reverse("dialogue_action", args=[dialogue.pk, "step"]), headers=hx)
        assert answer.status_code == 200 and "Next step asked for" in answer.content.decode()
        assert (
            f'id="dialogue-state-{dialogue.pk}" class="card dialogue-state" hx-swap-oob="morph"'
            in answer.content.decode()
        )
        assert Turn.objects.filter(dialogue=dialogue).count() == expected
        assert Dialogue.objects.get(pk=dialogue.pk).status == DialogueStatus.PAUSED
    client.post(reverse("dialogue_action", args=[dialogue.pk, "run"]), headers=hx)
    finished = Dialogue.objects.get(pk=dialogue.pk)
    assert finished.status == DialogueStatus.FINISHED and finished.turns_count == finished.turns.count() > 2
    page = client.get(reverse("dialogue_detail", args=[dialogue.pk])).content.decode()
    assert "This dialogue is over." in page
    assert re.search(r'hx-post="[^"]+/step/"[^>]*\sdisabled>Next turn', page)
    assert client.post(reverse("dialogue_action", args=[dialogue.pk, "explode"])).status_code == 404
    assert client_for(Role.ANNOTATOR).post(reverse("dialogue_action", args=[dialogue.pk, "step"])).status_code == 403


def test_a_viewer_sees_no_stepping_buttons(finished_run, client_for):
    dialogue = finished_run.dialogues.first()
    text = client_for(Role.VIEWER).get(reverse("dialogue_detail", args=[dialogue.pk])).content.decode()
    assert "Next turn" not in text and "Your role can read dialogues but not step them." in text


def test_missing_dialogue_is_404(db, client_for):
    assert client_for(Role.VIEWER).get(reverse("dialogue_detail", args=[987654])).status_code == 404


# --- the dialogue list -----------------------------------------------------------------------------------


def listed(client, **query) -> list[int]:
    answer = client.get(reverse("dialogue_list"), query, headers={"HX-Request": "true"})
    assert answer.status_code == 200
    text = answer.content.decode()
    assert text.lstrip().startswith('<section id="dialogue-results"')  # htmx gets the results only
    return [int(pk) for pk in re.findall(r'<td><a href="/dialogues/(\d+)/">#', text)]


def test_dialogue_list_filters_search_and_sorts(finished_run, client_for):
    client = client_for(Role.VIEWER)
    every = set(finished_run.dialogues.values_list("pk", flat=True))
    assert set(listed(client)) == every

    def ids(**lookup) -> set[int]:
        return set(finished_run.dialogues.filter(**lookup).values_list("pk", flat=True))

    assert set(listed(client, strategy="nsi")) == ids(nsi_used=True) != set()
    assert set(listed(client, strategy="ssi")) == ids(ssi_used=True) != set()
    assert set(listed(client, strategy="native")) == ids(nsi_used=False, ssi_used=False)
    assert set(listed(client, passed="1")) == ids(filter_passed=True) != set()
    assert set(listed(client, passed="0")) == ids(filter_passed=False)
    assert set(listed(client, kept="1")) == ids(kept=True)
    assert set(listed(client, hard="1")) == ids(task__hard=True)
    assert set(listed(client, split="train")) == ids(task__split="train")
    assert set(listed(client, status="finished")) == ids(status="finished")
    assert set(listed(client, goal_min="8.5")) == ids(final_goal_c__gte=8.5)
    assert set(listed(client, goal_min="7", goal_max="8")) == ids(final_goal_c__gte=7, final_goal_c__lte=8)
    assert set(listed(client, q=ROOF)) == ids(task__scenario__codename=ROOF)
    said = Turn.objects.filter(dialogue__run=finished_run, action_type="speak").first()
    phrase = said.argument.split(".")[0][:30]
    assert set(listed(client, text=phrase)) == set(
        finished_run.dialogues.filter(turns__argument__icontains=phrase).values_list("pk", flat=True)
    )
    assert listed(client, text="words nobody ever said") == []
    goals = [Dialogue.objects.get(pk=pk).final_goal_c for pk in listed(client, sort="-final_goal_c", status="finished")]
    assert goals == sorted(goals, reverse=True)
    # an invalid value is named, and no filter applies until it is fixed (never a server error)
    assert set(listed(client, goal_min="lots")) == every
    short = client.get(reverse("dialogue_list"), {"text": "to"}, headers={"HX-Request": "true"}).content.decode()
    assert "Words in the turns: Search the turns for at least 3 characters." in short


def test_dialogue_list_paginates_and_a_run_lists_its_own(finished_run, client_for):
    other = simulated_run(Task.objects.filter(scenario__codename="field_trip_seats"), name="finished")
    task = other.tasks.first()
    for i in range(60):
        DialogueFactory(run=other, task=task, attempt=10 + i, status=DialogueStatus.PAUSED)
    client = client_for(Role.VIEWER)
    first = client.get(reverse("dialogue_list")).content.decode()
    assert "Page 1 of 2" in first
    total = Dialogue.objects.count()
    second = listed(client, page="2")
    assert len(second) == total - 50
    run_page = client.get(reverse("run_detail", args=[finished_run.pk]), headers={"HX-Request": "true"})
    shown = {int(pk) for pk in re.findall(r'<td><a href="/dialogues/(\d+)/">#', run_page.content.decode())}
    assert shown == set(finished_run.dialogues.values_list("pk", flat=True))


def test_progress_turn_count_matches_the_rows(finished_run):
    for dialogue in finished_run.dialogues.all():
        assert dialogue.turns_count == dialogue.turns.count()
        assert dialogue.nsi_used == dialogue.turns.filter(branch="NSI").exists()
        assert dialogue.ssi_used == dialogue.turns.filter(branch="SSI").exists()


def test_the_raw_variant_shows_only_native_turns(demo_tasks, client_for):
    run = simulated_run(Task.objects.filter(scenario__codename="field_trip_seats"), name="finished",
                        config={"variant": Variant.RAW})  # fmt: skip
    dialogue = run.dialogues.first()
    text = client_for(Role.VIEWER).get(reverse("dialogue_detail", args=[dialogue.pk])).content.decode()
    assert (
        "branch-SSI" not in text.split('<ol id="timeline')[1] and "branch-NSI" not in text.split('<ol id="timeline')[1]
    )


def test_a_cached_turn_is_never_shown_stale(finished_run, client_for):
    """Turns are drawn from the fragment cache; any change to what a turn shows gives it a new key."""
    dialogue = nsi_dialogue(finished_run)
    url = reverse("dialogue_detail", args=[dialogue.pk])
    client = client_for(Role.VIEWER)
    first = client.get(url).content.decode()
    turn = dialogue.turns.order_by("index").first()
    assert turn.argument.split(".")[0] in first
    turn.argument = "A corrected line nobody said before."
    turn.save()
    assert "A corrected line nobody said before." in client.get(url).content.decode()
    rated = StepRating.objects.filter(dialogue=dialogue).first()
    StepRating.objects.filter(pk=rated.pk).update(goal_c=1.25)
    assert "goal_c <strong>1.25</strong>" in client.get(url).content.decode()


def test_requests_inside_django_are_bounded():
    import asyncio

    from omega_web.asgi import BoundedHTTP

    inside, peak = 0, 0

    async def app(scope, receive, send):
        nonlocal inside, peak
        inside += 1
        peak = max(peak, inside)
        await asyncio.sleep(0.01)
        inside -= 1

    bounded = BoundedHTTP(app, limit=3)

    async def main():
        await asyncio.gather(*(bounded({"type": "http"}, None, None) for _ in range(20)))

    asyncio.run(main())
    assert peak == 3
