"""Per-session dashboard state and the handlers that turn (state, inputs) into (new state, page parts).

Nothing here imports Gradio: the handlers take a recommender and plain values, so tests drive them
directly with any embedder or reranker (the dashboard never asks which model runs). app.py wires them to
components and turns `NewsrecError` into `gr.Error`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from newsrec.errors import InputError
from newsrec.types import RecommendResult, UserProfile
from newsrec.ui import cards, charts, feedback
from newsrec.ui.controls import Controls
from newsrec.ui.i18n import t

if TYPE_CHECKING:
    import plotly.graph_objects as go

    from newsrec.pipeline import Recommender

log = logging.getLogger(__name__)


class JudgmentRecorder(Protocol):
    """Where editors' verdicts go (newsrec.evaluation.judgments.JudgmentStore)."""

    def record(
        self, user_id: str, query: str, news_id: str, relevant: bool, config: str, rank: int | None = None
    ) -> Any: ...

    def judgments(self, user_id: str | None = None, query: str | None = None, config: str | None = None) -> list: ...


@dataclass
class Session:
    """What one browser tab remembers between events (kept in gr.State, copied per session)."""

    user_id: str = ""
    query: str = ""
    profile: UserProfile | None = None  # the session's profile after feedback; None = the reader's original
    result: RecommendResult | None = None
    cache_hits: int = 0
    cache_lookups: int = 0
    runs: int = 0  # recommendations shown so far in this tab
    controls: Controls | None = None  # the knobs of the list on screen (for its link and notes)
    last_feedback: feedback.Outcome | None = None  # what the latest click changed, said above the cards
    draft: Any = None  # this tab's own editorial draft (a RuleSet) on a public Space; None = the store's draft


class View(NamedTuple):
    results: str
    side_by_side: str
    scores: go.Figure
    shift: go.Figure
    mix: go.Figure
    system: str
    judged: str  # the judgment count for the list on screen


class Dashboard:
    def __init__(
        self, rec: Recommender, link: cards.ImageLinker = cards.no_images, judgments: JudgmentRecorder | None = None
    ):
        self.rec = rec
        self.link = link
        self.judgments = judgments
        self._feeds: dict[str, Any] = {}  # "live" | "draft" -> EditorialFeeds (each follows its files)
        self._own: tuple[str, Any] | None = None  # (draft JSON, EditorialFeeds) of a session's own draft

    @property
    def can_judge(self) -> bool:
        """Judgment buttons are shown only where verdicts can be stored (not on a read-only data folder)."""
        if self.judgments is None or getattr(self.rec.settings, "read_only", False):
            return False
        return not getattr(self.judgments, "read_only", False)

    # --- pickers -----------------------------------------------------------------------------

    def user_choices(self) -> list[tuple[str, str]]:
        """(label, user id) for the picker: the name plus the start of the persona."""
        choices = []
        for user in self.rec.corpus.users.values():
            persona = user.persona if len(user.persona) <= 60 else user.persona[:59] + "…"
            label = f"{user.name} — {persona}" if persona else user.name
            choices.append((label, user.id))
        return choices

    def category_choices(self) -> list[str]:
        return sorted({item.category for item in self.rec.corpus.news.values() if item.category})

    def category_options(self, lang: str = "en") -> list[tuple[str, str]]:
        """(label, value) pairs for the category filter: labels in the page's language, values unchanged."""
        from newsrec.ui.reasons import category_name

        return [(category_name(category, lang), category) for category in self.category_choices()]

    # --- handlers ----------------------------------------------------------------------------

    def select_user(self, user_id: str | None, lang: str = "en") -> tuple[Session, str]:
        """A fresh session for the reader and their history cards."""
        if not user_id:
            return Session(), cards.history_html(None, {}, self.link, lang)
        user = self.rec.corpus.user(user_id)
        return Session(user_id=user.id), cards.history_html(user, self.rec.corpus.news, self.link, lang)

    def history(self, session: Session, lang: str = "en") -> str:
        user = self.rec.corpus.users.get(session.user_id)
        return cards.history_html(user, self.rec.corpus.news, self.link, lang)

    def defaults(self) -> Controls:
        """The controls as the settings set them (what a link without parameters shows)."""
        s = self.rec.settings
        return Controls(s.k, s.candidates, round(1 - s.mmr_lambda, 2), s.freshness_half_life_days, [], s.instruction)

    def run(
        self, session: Session, query: str | None, controls: Controls, lang: str = "en", user_id: str | None = None
    ) -> tuple[Session, View]:
        """Recommend for the session's reader; `user_id` (the picker's value) wins over a stale session."""
        if user_id and user_id != session.user_id:
            session, _ = self.select_user(user_id, lang)
        if session.user_id:  # else nothing is picked yet: the page says so, no error toast
            session = self._recommend(session, query, controls)
        return session, self.view(session, lang)

    def feeds(self, which: str = "live", draft: Any = None):
        """The editorial glue (newsrec/editorial/feed.py) for the feed's rule set, or None for no rules.

        One per set, kept: it reloads itself when the store's files change, so a reach plan is solved once, not
        per click. `draft` is a session's own draft (a public Space keeps visitors' drafts out of the store).
        """
        from newsrec.editorial.feed import EditorialFeeds

        if which not in ("live", "draft", "none"):
            raise InputError(f"unknown rule set {which!r}; use live, draft or none")
        if which == "none":
            return None
        if which == "draft" and draft is not None:
            key = draft.to_json()
            if self._own is None or self._own[0] != key:
                self._own = (key, EditorialFeeds(self.rec, "draft", ruleset=draft))
            return self._own[1]
        if which not in self._feeds:
            self._feeds[which] = EditorialFeeds(self.rec, which)
        return self._feeds[which]

    def _recommend(self, session: Session, query: str | None, controls: Controls) -> Session:
        edited = self.feeds(controls.rules or "live", session.draft)
        recommend = edited.recommend if edited is not None else self.rec.recommend
        result = recommend(
            session.user_id,
            query=query,
            k=int(controls.k),
            candidates=int(controls.candidates),
            filters=_filters(controls.categories),
            profile=session.profile,
            instruction=controls.instruction.strip() or None,
            mmr_lambda=1.0 - float(controls.diversity),
            half_life_days=float(controls.half_life_days),
        )
        return replace(
            session,
            query=result.query,
            result=result,
            runs=session.runs + 1,
            cache_hits=session.cache_hits + result.cache_hits,
            cache_lookups=session.cache_lookups + result.cache_hits + result.cache_misses,
            controls=controls,
            last_feedback=None,
        )

    def feedback(
        self, session: Session, action: str, news_id: str, controls: Controls, lang: str = "en"
    ) -> tuple[Session, View]:
        """ "More like this" keeps the card and brings in similar stories; "not interested" hides it and
        demotes similar ones. Either way the page says what changed."""
        if action not in {"like", "dislike"}:
            raise InputError(f"unknown feedback {action!r}; expected 'like' or 'dislike'")
        if not session.user_id:
            raise InputError(t("pick_user", lang))
        profile = session.profile or self.rec.profile(session.user_id)
        before = session.result
        updated = feedback.update_profile(self.rec, profile, news_id, liked=action == "like")
        session = self._recommend(replace(session, profile=updated), session.query, controls)
        after = session.result
        shown = {r.item.id: r for r in before.reranked} if before else {}
        if action == "like" and news_id in shown:
            after = feedback.keep_card(after, shown[news_id])
        changed = feedback.outcome(self.rec, action, news_id, before, after)
        session = replace(session, result=after, last_feedback=changed)
        return session, self.view(session, lang)

    def reset(self, session: Session, controls: Controls, lang: str = "en") -> tuple[Session, View]:
        """Forget the session's feedback and recommend from the reader's original profile."""
        session = replace(session, profile=None, last_feedback=None)
        if session.result is None:
            return session, self.view(session, lang)
        return self.run(session, session.query, controls, lang)

    def judge(self, session: Session, news_id: str, relevant: bool, lang: str = "en") -> str:
        """Store an editor's verdict on one shown item, for every list that showed it.

        Relevance belongs to (reader, query, item), not to the list, so one click judges the item under each
        configuration that showed it ("retrieval:<embedder>", "rerank:<reranker>"), at the rank it had there.
        """
        if self.judgments is None:
            return t("judgments_unavailable", lang)
        if not self.can_judge:  # a read-only NEWSREC_HOME (newsrec/read_only.py): say so, write nothing
            return t("judging_read_only", lang, home=str(self.rec.settings.home))
        result = session.result
        lists = (
            {}
            if result is None
            else {
                f"retrieval:{result.embedder}": result.retrieval,
                f"rerank:{result.reranker}": result.reranked,
            }
        )
        shown = {config: rec.rank for config, recs in lists.items() for rec in recs if rec.item.id == news_id}
        if not shown:
            raise InputError(f"{news_id!r} is not among the current recommendations")
        for config, rank in shown.items():
            self.judgments.record(session.user_id, session.query, news_id, relevant, config, rank=rank)
        title = cards.clip(self.rec.corpus.news[news_id].title, 60)
        return t("judged_toast", lang, title=title, verdict=t("relevant" if relevant else "not_relevant", lang))

    def verdicts(self, session: Session) -> dict[str, bool]:
        """news id -> the latest verdict on it for the session's reader and query (any list)."""
        if self.judgments is None or not session.user_id:
            return {}
        rows = self.judgments.judgments(user_id=session.user_id, query=session.query or "")
        return {row.news_id: row.relevant for row in rows}  # oldest first, so the latest wins

    def judged_html(self, session: Session, lang: str = "en") -> str:
        if self.judgments is None or not session.user_id:
            return ""
        count = len(self.verdicts(session))
        text = cards.esc(t("judgment_count", lang, count=count))
        return f'<span class="judged-count" data-count="{count}">✓✗ {text}</span>'

    def export_judgments(self, path) -> str:
        """Every stored judgment as CSV at `path` (for the page's download button); returns the path."""
        import csv

        from newsrec.evaluation.judgments import spreadsheet_safe

        rows = self.judgments.judgments() if self.judgments is not None else []
        with open(path, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["user_id", "query", "news_id", "title", "config", "relevant", "rank", "created_at"])
            for row in rows:
                title = self.rec.corpus.news[row.news_id].title if row.news_id in self.rec.corpus.news else ""
                when = datetime.fromtimestamp(row.created_at, timezone.utc).isoformat(timespec="seconds")
                cells = [row.user_id, row.query, row.news_id, title, row.config, int(row.relevant), row.rank, when]
                writer.writerow([spreadsheet_safe(cell) for cell in cells])  # no formulas in Excel/Sheets
        return str(path)

    def export_judged_set(self, path) -> str:
        """Every stored judgment as a judged-relevance test set (JSONL for `evaluate --judgments`); the path."""
        if self.judgments is None:
            Path(path).write_text("", encoding="utf-8")
            return str(path)
        return str(self.judgments.export_jsonl(path))

    # --- page parts ----------------------------------------------------------------------------

    def view(self, session: Session, lang: str = "en") -> View:
        result = session.result
        system = cards.system_html(self.facts(lang), result, lang, (session.cache_hits, session.cache_lookups))
        judged = self.judged_html(session, lang)
        link = self.link_query(session, lang)
        if result is None:
            empty = charts.empty_figure(t("pick_user", lang))
            blank = cards.results_html(None, self.link, lang, deep_link=link)
            return View(blank, cards.side_by_side_html(None, self.link, lang), empty, empty, empty, system, judged)
        profile = session.profile or self.rec.profile(session.user_id)
        history = [self.rec.corpus.news[i].category for i in profile.read_ids if i in self.rec.corpus.news]
        shares = charts.history_category_shares(profile.categories, history)
        if not result.reranked:
            empty = charts.empty_figure(t("no_results", lang))
            scores = shift = mix = empty
        else:
            scores = charts.score_distributions(result, lang)
            shift = charts.rank_shift(result, lang)
            mix = charts.category_mix(shares, result, lang)
        marks = self.marks(session, profile)
        judging = self.can_judge
        return View(
            cards.results_html(
                result, self.link, lang, self.notes(session, profile, lang), judging, session.runs, marks, link
            ),
            cards.side_by_side_html(result, self.link, lang, judgments=judging, marks=marks),
            scores,
            shift,
            mix,
            system,
            judged,
        )

    def marks(self, session: Session, profile: UserProfile) -> cards.Marks:
        news = self.rec.corpus.news
        brought = {}
        outcome = session.last_feedback
        if outcome is not None and outcome.action == "like":
            brought = {news_id: outcome.title for news_id in outcome.changed}
        duplicates = {i for rec in (session.result.reranked if session.result else []) for i in rec.duplicate_ids}
        return cards.Marks(
            verdicts=self.verdicts(session),
            liked=set(profile.liked_ids),
            brought_by=brought,
            languages={i: news[i].language for i in duplicates if i in news},
        )

    def notes(self, session: Session, profile: UserProfile, lang: str = "en") -> str:
        """Lines above the cards: what the latest click did, the session's feedback, raised candidates."""
        lines = []
        if session.last_feedback is not None:
            titles = {i: self.rec.corpus.news[i].title for i in session.last_feedback.changed}
            lines.append(feedback.message(session.last_feedback, titles, lang))
        if profile.liked_ids or profile.disliked_ids:
            lines.append(t("feedback_note", lang, liked=len(profile.liked_ids), disliked=len(profile.disliked_ids)))
        knobs = session.controls
        if knobs is not None and int(knobs.candidates) < int(knobs.k):
            lines.append(t("candidates_raised", lang, asked=int(knobs.candidates), k=int(knobs.k)))
        return "\n".join(lines)

    def link_query(self, session: Session, lang: str = "en") -> str:
        """The view's deep link (`?user=…&q=…`), for the address bar."""
        from newsrec.ui import deeplink

        defaults = self.defaults()
        state = deeplink.LinkState(session.user_id, session.query, lang, session.controls or defaults)
        return deeplink.to_query(state, defaults)

    def facts(self, lang: str = "en") -> dict[str, str]:
        """What runs and why: mode, device, models and corpus size, for the system panel."""
        rec = self.rec
        settings = rec.settings
        device = _device(rec)
        return {
            t("mode", lang): _mode_label(rec),
            t("mode_why", lang): mode_reason(rec, device, lang),
            t("device", lang): device,
            t("embedder", lang): _model_label(rec.embedder, settings.embedder_model),
            t("reranker", lang): _model_label(rec.reranker, settings.reranker_model),
            t("visual_tokens", lang): str(settings.visual_tokens),
            t("corpus", lang): f"{rec.corpus.name} · "
            + t("corpus_size", lang, news=len(rec.corpus.news), users=len(rec.corpus.users)),
        } | ({t("storage", lang): t("storage_read_only", lang, home=str(settings.home))} if settings.read_only else {})


def mode_reason(rec: Any, device: str, lang: str = "en") -> str:
    """Why this mode runs: "lite: no CUDA device", "lite: chosen in the settings", "Qwen3-VL: 8B on H200"…"""
    settings = rec.settings
    if rec.mode == "lite":
        if "auto" not in (settings.embedder, settings.reranker):
            return t("mode_reason_lite_chosen", lang)
        from newsrec.config import cuda_available

        if not cuda_available():
            return t("mode_reason_lite_nocuda", lang)
        from newsrec.models import describe_model_problem

        return "lite: " + (describe_model_problem("qwen3-vl-reranker-8b", settings.reranker_model) or "?")
    label = _mode_label(rec)
    if label == "Qwen3-VL":
        return t("mode_reason_gpu", lang, model=rec.reranker.name, device=device)
    return t("mode_reason_custom", lang, models=f"{rec.embedder.name} + {rec.reranker.name}")


def _filters(categories: list[str] | None):
    from newsrec.pipeline import Filters

    return Filters(categories=list(categories or []))


def _mode_label(rec: Any) -> str:
    """The pipeline's mode, named after the models that actually run (tests and plug-ins may bring others)."""
    if rec.mode == "lite":
        return "lite"
    names = f"{rec.embedder.name} {rec.reranker.name}"
    return "Qwen3-VL" if "qwen3-vl" in names else f"custom ({rec.mode})"


def _model_label(model: Any, configured: str) -> str:
    """Registry name plus the checkpoint it loaded, when the model says (or the settings override it)."""
    checkpoint = configured or getattr(model, "model_id", "") or getattr(model, "model_name", "")
    name = getattr(model, "name", type(model).__name__)
    return f"{name} ({checkpoint})" if checkpoint and str(checkpoint) != name else str(name)


def _device(rec: Any) -> str:
    for model in (rec.reranker, rec.embedder):
        device = getattr(model, "device", None)
        if device is not None and str(device) != "cpu":
            return str(device)
    try:
        import torch

        if torch.cuda.is_available():
            return f"cuda ({torch.cuda.get_device_name(0)})"
    except ImportError:  # lite mode does not need torch's CUDA build
        pass
    return "cpu"


class RecommenderLoader:
    """Builds the recommender on a background thread so the page serves at once and shows the build's progress.

    `factory(on_progress)` does the work (the first run embeds the whole corpus); `get()` blocks until it is
    done, reporting (done, total) to `on_wait` meanwhile, and re-raises the build's error in every caller.
    """

    def __init__(self, factory: Callable[[Callable[[int, int], None]], Recommender]):
        self._factory = factory
        self._done = threading.Event()
        self._value: Recommender | None = None
        self._error: BaseException | None = None
        self.progress: tuple[int, int] = (0, 0)
        self.seconds: float | None = None  # how long the build took, once done

    def start(self) -> RecommenderLoader:
        threading.Thread(target=self._build, name="newsrec-loader", daemon=True).start()
        return self

    def _build(self) -> None:
        started = time.perf_counter()
        try:
            self._value = self._factory(self._report)
        except BaseException as error:  # handed to every caller of get(); the thread itself must not die silently
            log.exception("building the recommender failed")
            self._error = error
        finally:
            self.seconds = time.perf_counter() - started
            self._done.set()

    def _report(self, done: int, total: int) -> None:
        self.progress = (done, total)

    @property
    def ready(self) -> bool:
        return self._done.is_set() and self._error is None

    def get(self, on_wait: Callable[[int, int], None] | None = None, poll_s: float = 0.25) -> Recommender:
        while not self._done.wait(poll_s if on_wait else None):
            on_wait(*self.progress)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set whenever _error is None
