"""newsrec editorial dashboard: pick a reader, query, and compare retrieval with the reranked list.

    python app.py [--host 127.0.0.1] [--port 7860]

Host and port also come from NEWSREC_HOST / NEWSREC_PORT (or GRADIO_SERVER_NAME / GRADIO_SERVER_PORT); in a
Hugging Face Space (SPACE_ID set) the app binds 0.0.0.0. The page serves at once; the first run builds the
demo index in the background (a rich bar in the console, a progress bar on the page).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import hashlib
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gradio as gr

from newsrec.config import ASSETS_DIR, Settings
from newsrec.data.corpus import corpus_root
from newsrec.errors import NewsrecError
from newsrec.storage_errors import storage_hint
from newsrec.ui import deeplink, media
from newsrec.ui.i18n import LANGUAGES, lang_code, t
from newsrec.ui.newsroom_tab import build_newsroom_tab, desk_factory
from newsrec.ui.state import Controls, Dashboard, RecommenderLoader, Session, View

try:  # ZeroGPU Spaces: the decorator borrows a GPU for the call; elsewhere it is absent and not needed
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:

    def gpu(fn):
        return fn


log = logging.getLogger("newsrec.app")

EXAMPLE_QUERIES = ["最新电池技术突破", "NBA最新战况", "Apple launch event", "solid-state battery", "apple harvest"]
STYLE = ASSETS_DIR / "style.css"
NEWSROOM_STYLE = ASSETS_DIR / "newsroom.css"

# Clicks on a card's buttons reach Python as the results component's own "click" event, carrying the action
# and the news id; the listener sits on the component root, so it survives every re-render of the cards.
# The same script keeps the address bar on the view's deep link (the cards carry it as data-link).
CARD_CLICKS = """
element.addEventListener('click', (event) => {
  const button = event.target.closest('button[data-action]');
  if (!button || button.disabled) return;
  event.preventDefault();
  const card = button.closest('.news-card, .side-row');
  if (card && button.dataset.action === 'dislike') card.classList.add('leaving');
  if (card && button.dataset.action.includes('relevant')) {
    card.querySelectorAll('button[data-action$="relevant"]').forEach((b) => b.classList.remove('chosen'));
    button.classList.add('chosen');
    card.dataset.judgment = button.dataset.action;
  }
  trigger('click', {action: button.dataset.action, news_id: button.dataset.newsId});
});
const follow = () => {
  const linked = element.querySelector('[data-link]');
  if (linked && linked.dataset.link !== window.location.search) {
    history.replaceState(null, '', window.location.pathname + linked.dataset.link);
  }
};
new MutationObserver(follow).observe(element, {childList: true, subtree: true});
"""

# The address bar's `lang` follows the toggle even while the cards are on a hidden tab (they re-render later).
FOLLOW_LANGUAGE = """
(choice) => {
  const url = new URL(window.location.href);
  if (choice === '中文') url.searchParams.set('lang', 'zh'); else url.searchParams.delete('lang');
  history.replaceState(null, '', url.pathname + url.search);
  return [];
}
"""

# On a phone the reading history starts folded, so the query comes first (the summary line stays).
FOLD_ON_PHONES = """
const fold = () => {
  if (!window.matchMedia('(max-width: 760px)').matches) return;
  element.querySelectorAll('details.history-box[open]:not([data-folded])').forEach((box) => {
    box.open = false;
    box.dataset.folded = '1';
  });
};
new MutationObserver(fold).observe(element, {childList: true, subtree: true});
"""


# --- handlers ------------------------------------------------------------------------------------


def friendly(fn: Callable) -> Callable:
    """Show problems the user can fix as a Gradio error toast instead of a traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NewsrecError as error:
            hint = storage_hint(error.__cause__) if error.__cause__ is not None else None
            raise gr.Error(hint or str(error)) from None
        except Exception as error:
            hint = storage_hint(error)  # a full disk or a read-only NEWSREC_HOME: the same line as the CLI
            if hint is None:
                raise
            raise gr.Error(hint) from None

    return wrapper


def make_handlers(get_dashboard: Callable[..., Dashboard]):
    """Gradio-facing handlers around a Dashboard; `get_dashboard(progress)` waits for the index build."""

    def controls(k, candidates, diversity, half_life, categories, instruction, rules="live") -> Controls:
        return Controls(
            int(k), int(candidates), float(diversity), float(half_life), list(categories or []), instruction,
            rules or "live",
        )  # fmt: skip

    # The model work, and only it, borrows the GPU on ZeroGPU Spaces (waiting for the index build does not).
    @gpu
    def recommend(session: Session, query: str, knobs: Controls, lang: str, user_id: str | None = None):
        return get_dashboard().run(session, query, knobs, lang, user_id=user_id)

    @gpu
    def feedback(session: Session, action: str, news_id: str, knobs: Controls, lang: str):
        return get_dashboard().feedback(session, action, news_id, knobs, lang)

    @gpu
    def reset(session: Session, knobs: Controls, lang: str):
        return get_dashboard().reset(session, knobs, lang)

    def labels(lang: str) -> list:
        updates = [gr.update(value=header_html(lang))]
        for key in LABEL_KEYS:
            text = t(key, lang)
            if key in BUTTON_KEYS:
                updates.append(gr.update(value=text))
            elif key == "query":
                updates.append(gr.update(label=text, placeholder=t("query_placeholder", lang)))
            elif key == "nr_feed_rules":
                updates.append(gr.update(label=text, choices=feed_rule_choices(lang)))
            else:
                updates.append(gr.update(label=text))
        return updates

    @friendly
    def on_load(request: gr.Request, progress=gr.Progress()):
        """The first view: a deep link's reader, query, language and controls, else the first reader's feed."""
        dash = get_dashboard(progress)
        choices = dash.user_choices()
        wanted = deeplink.parse(
            getattr(request, "query_params", None),
            dash.defaults(),
            users=[user_id for _, user_id in choices],
            categories=dash.category_choices(),
        )
        lang = wanted.lang
        first = wanted.user or (choices[0][1] if choices else None)
        session, history = dash.select_user(first, lang)
        knobs = wanted.controls
        session, view = recommend(session, wanted.query, knobs, lang, first)
        rec = dash.rec
        models = f"**{t('embedder', lang)}**: `{rec.embedder.name}` · **{t('reranker', lang)}**: `{rec.reranker.name}`"
        return (
            gr.update(choices=choices, value=first),
            gr.update(choices=dash.category_options(lang), value=knobs.categories),
            gr.update(value=knobs.instruction),
            models,
            session,
            history,
            wanted.query,
            LANGUAGE_NAMES[lang],
            knobs.k,
            knobs.candidates,
            knobs.diversity,
            knobs.half_life_days,
            knobs.rules,
            dash.export_judgments(_export_path(dash)),
            dash.export_judged_set(_export_path(dash, ".jsonl")),
            *view,
        )

    @friendly
    def on_user(user_id, lang_choice):
        return get_dashboard().select_user(user_id, lang_code(lang_choice))

    @friendly
    def on_run(session, user_id, query, lang_choice, *knobs_and_desk):
        *knobs, desk = knobs_and_desk
        session = with_draft(session, desk)
        session, view = recommend(session, query, controls(*knobs), lang_code(lang_choice), user_id)
        return session, *view

    @friendly
    def on_card(session, lang_choice, k, candidates, diversity, half_life, categories, instruction, rules, desk,
                evt: gr.EventData):  # fmt: skip
        knobs = (k, candidates, diversity, half_life, categories, instruction, rules)
        session = with_draft(session, desk)
        data = getattr(evt, "_data", None) or {}
        action, news_id, lang = data.get("action"), str(data.get("news_id") or ""), lang_code(lang_choice)
        dash = get_dashboard()
        untouched = [gr.skip()] * (len(View._fields) - 1)
        if action in ("relevant", "not-relevant"):
            gr.Info(dash.judge(session, news_id, action == "relevant", lang))
            exports = dash.export_judgments(_export_path(dash)), dash.export_judged_set(_export_path(dash, ".jsonl"))
            return session, *untouched, dash.judged_html(session, lang), *exports
        if action not in ("like", "dislike"):
            return session, *untouched, gr.skip(), gr.skip(), gr.skip()  # a click on the card itself, not a button
        session, view = feedback(session, action, news_id, controls(*knobs), lang)
        return session, *view, gr.skip(), gr.skip()

    @friendly
    def on_reset(session, lang_choice, *knobs_and_desk):
        *knobs, desk = knobs_and_desk
        session, view = reset(with_draft(session, desk), controls(*knobs), lang_code(lang_choice))
        return session, *view

    @friendly
    def on_language(session, lang_choice):
        dash, lang = get_dashboard(), lang_code(lang_choice)
        updates = labels(lang)
        filters = 1 + LABEL_KEYS.index("categories")  # the filter's options follow the language too
        updates[filters] = gr.update(label=t("categories", lang), choices=dash.category_options(lang))
        return *updates, dash.history(session, lang), *dash.view(session, lang)

    return on_load, on_user, on_run, on_card, on_reset, on_language


def with_draft(session: Session, desk) -> Session:
    """The session with this tab's own Newsroom draft (public Spaces keep drafts per visitor, in gr.State)."""
    draft = getattr(desk, "draft", None)
    return session if session.draft is draft else dataclasses.replace(session, draft=draft)


def feed_rule_choices(lang: str) -> list[tuple[str, str]]:
    return [(t(f"feed_rules_{which}", lang), which) for which in ("live", "draft", "none")]


def _export_path(dash: Dashboard, suffix: str = ".csv") -> str:
    """Where the judgments CSV (or JSONL test set) is written: one file per data dir, in the temp folder Gradio
    may serve from.

    Every tab exports the same table (all judgments), so rewriting one file is enough; Gradio copies it to
    its cache before serving it.
    """
    folder = Path(tempfile.gettempdir()) / "newsrec-exports"
    folder.mkdir(exist_ok=True)
    home = hashlib.sha256(str(dash.rec.settings.home).encode()).hexdigest()[:12]
    return str(folder / f"judgments-{home}{suffix}")


# --- page ----------------------------------------------------------------------------------------

# i18n keys of the components the language toggle relabels, in the order build_demo lists the components
LABEL_KEYS = (
    "user", "history", "query", "run", "reset", "controls", "k", "candidates", "diversity", "freshness",
    "categories", "instruction", "tab_results", "tab_side", "tab_charts", "tab_system", "evaluation", "export_csv",
    "export_jsonl", "tab_newsroom", "nr_feed_rules",
)  # fmt: skip
BUTTON_KEYS = {"run", "reset"}  # buttons show their label as their value (a DownloadButton's value is its file)
LANGUAGE_NAMES = {code: name for name, code in LANGUAGES.items()}


def header_html(lang: str) -> str:
    return f"<h1>📰 {t('title', lang)}</h1><p>{t('subtitle', lang)}</p>"


def build_demo(
    get_dashboard: Callable[..., Dashboard], settings: Settings, gpu_concurrency: int = 2, get_recommender=None
) -> gr.Blocks:
    """The page; `gpu_concurrency` caps how many recommend calls run at once (1 on a GPU: one model, one batch)."""
    on_load, on_user, on_run, on_card, on_reset, on_language = make_handlers(get_dashboard)
    lang = "en"
    with gr.Blocks(title=t("title", lang), fill_width=True) as demo:
        session = gr.State(Session())
        with gr.Row(elem_id="header"):
            header = gr.HTML(header_html(lang), elem_id="title", js_on_load=None)
            language = gr.Radio(
                list(LANGUAGES), value="English", label="Language · 语言", show_label=False, elem_id="language",
                scale=0, min_width=210,
            )  # fmt: skip
        with gr.Row(equal_height=False, elem_id="layout"):
            with gr.Column(scale=1, min_width=300, elem_id="sidebar"):
                user_picker = gr.Dropdown(label=t("user", lang), choices=[], elem_id="user-picker")
                history = gr.HTML(
                    label=t("history", lang), elem_id="history", max_height=900, js_on_load=FOLD_ON_PHONES
                )
            with gr.Column(scale=3, elem_id="main"):
                with gr.Row(elem_id="query-row"):
                    query = gr.Textbox(
                        label=t("query", lang),
                        placeholder=t("query_placeholder", lang),
                        elem_id="query",
                        scale=6,
                        max_lines=1,
                    )
                    run = gr.Button(t("run", lang), variant="primary", elem_id="run", scale=1, min_width=120)
                    reset = gr.Button(t("reset", lang), variant="secondary", elem_id="reset", scale=1, min_width=150)
                with gr.Row(elem_id="examples"):
                    examples = [
                        gr.Button(text, size="sm", elem_classes=["example-chip"], scale=0, min_width=60)
                        for text in EXAMPLE_QUERIES
                    ]
                with gr.Accordion(t("controls", lang), open=False, elem_id="controls") as controls_box:
                    with gr.Row():
                        k = gr.Slider(1, 30, value=settings.k, step=1, label=t("k", lang), elem_id="k")
                        candidates = gr.Slider(
                            10,
                            300,
                            value=settings.candidates,
                            step=10,
                            label=t("candidates", lang),
                            elem_id="candidates",
                        )
                        diversity = gr.Slider(
                            0, 1, value=round(1 - settings.mmr_lambda, 2), step=0.05, label=t("diversity", lang),
                            elem_id="diversity",
                        )  # fmt: skip
                        half_life = gr.Slider(
                            0, 30, value=settings.freshness_half_life_days, step=1, label=t("freshness", lang),
                            elem_id="freshness",
                        )  # fmt: skip
                    categories = gr.Dropdown(
                        choices=[], multiselect=True, label=t("categories", lang), elem_id="categories"
                    )
                    instruction = gr.Textbox(
                        value=settings.instruction, label=t("instruction", lang), lines=2, elem_id="instruction"
                    )
                    feed_rules = gr.Radio(
                        feed_rule_choices(lang), value="live", label=t("nr_feed_rules", lang), elem_id="feed-rules"
                    )
                    models = gr.Markdown(elem_id="models")
                with gr.Row(elem_id="judge-bar"):
                    judged = gr.HTML(elem_id="judged", js_on_load=None)
                    export = gr.DownloadButton(t("export_csv", lang), size="sm", elem_id="export", scale=0)
                    export_set = gr.DownloadButton(t("export_jsonl", lang), size="sm", elem_id="export-jsonl", scale=0)
                with gr.Tabs(elem_id="tabs") as tabs:
                    with gr.Tab(t("tab_results", lang), id="tab-results", elem_id="tab-results") as tab_results:
                        results = gr.HTML(elem_id="results", js_on_load=CARD_CLICKS, min_height=200)
                    with gr.Tab(t("tab_side", lang), id="tab-side", elem_id="tab-side") as tab_side:
                        side = gr.HTML(elem_id="side-by-side", js_on_load=CARD_CLICKS)
                    with gr.Tab(t("tab_charts", lang), id="tab-charts", elem_id="tab-charts") as tab_charts:  # noqa: SIM117
                        with gr.Column(elem_id="charts"):
                            with gr.Row():
                                scores_plot = gr.Plot(show_label=False, elem_id="chart-scores")
                                mix_plot = gr.Plot(show_label=False, elem_id="chart-mix")
                            shift_plot = gr.Plot(show_label=False, elem_id="chart-shift")
                    with gr.Tab(t("tab_system", lang), id="tab-system", elem_id="tab-system") as tab_system:
                        system = gr.HTML(elem_id="system")
                    with gr.Tab(t("evaluation", lang), id="tab-evaluation", elem_id="tab-evaluation") as tab_eval:
                        evaluation, relabel_evaluation = _evaluation_tab(get_recommender, language)
                    with gr.Tab(t("tab_newsroom", lang), id="tab-newsroom", elem_id="tab-newsroom") as tab_newsroom:
                        newsroom = build_newsroom_tab(desk_factory(get_dashboard), language)

        # --- wiring --------------------------------------------------------------------------------
        view_parts = [results, side, scores_plot, shift_plot, mix_plot, system, judged]  # View's fields, in order
        labelled = [
            user_picker,
            history,
            query,
            run,
            reset,
            controls_box,
            k,
            candidates,
            diversity,
            half_life,
            categories,
            instruction,
            tab_results,
            tab_side,
            tab_charts,
            tab_system,
            tab_eval,
            export,
            export_set,
            tab_newsroom,
            feed_rules,
        ]  # same order as LABEL_KEYS
        knobs = [k, candidates, diversity, half_life, categories, instruction, feed_rules]
        # One progress indicator, on the cards, for everything that recomputes them.
        gpu_work = dict(concurrency_id="recommend", concurrency_limit=gpu_concurrency, show_progress_on=[results])
        run_inputs = [session, user_picker, query, language, *knobs, newsroom.state]

        demo.load(
            on_load,
            inputs=None,
            outputs=[user_picker, categories, instruction, models, session, history, query, language, *knobs[:4],
                     feed_rules, export, export_set, *view_parts],
            **gpu_work,
        )  # fmt: skip
        user_picker.input(on_user, [user_picker, language], [session, history]).success(
            on_run, run_inputs, [session, *view_parts], **gpu_work
        )
        for trigger in (run.click, query.submit):
            trigger(on_run, run_inputs, [session, *view_parts], **gpu_work)
        for chip in examples:
            chip.click(lambda text: text, chip, query).then(on_run, run_inputs, [session, *view_parts], **gpu_work)
        for cards_view in (results, side):
            cards_view.click(
                on_card,
                [session, language, *knobs, newsroom.state],
                [session, *view_parts, export, export_set],
                **gpu_work,
            )
        reset.click(on_reset, [session, language, *knobs, newsroom.state], [session, *view_parts], **gpu_work)
        language.change(on_language, [session, language], [header, *labelled, history, *view_parts]).then(
            lambda choice: relabel_evaluation(lang_code(choice)), language, evaluation
        ).then(newsroom.relabel, newsroom.relabel_inputs, [*newsroom.labelled, *newsroom.overview]).then(
            None, language, None, js=FOLLOW_LANGUAGE
        )
        demo.load(newsroom.on_load, None, [tabs, *newsroom.load_outputs], show_progress="hidden")
    return demo


def _evaluation_tab(get_recommender, language) -> tuple[list, Callable[[str], list]]:
    """The evaluation tab, when its module is present (the page works without it): components and relabel(lang)."""
    try:
        from newsrec.ui.evaluation_tab import build_evaluation_tab
    except ImportError:
        note = gr.Markdown(t("evaluation_missing"))
        return [note], lambda lang: [gr.update(value=t("evaluation_missing", lang))]
    return build_evaluation_tab(get_recommender, language)


# --- launch ----------------------------------------------------------------------------------------


def make_loader(settings: Settings) -> RecommenderLoader:
    from newsrec.pipeline import Recommender

    def build(on_progress):
        from newsrec.read_only import browse_settings

        # A read-only NEWSREC_HOME still serves the page (browse only): see newsrec/read_only.py.
        rec = Recommender.from_settings(browse_settings(settings), show_progress=True, on_progress=on_progress)
        rec.embedder.embed_queries(["warm up"])  # the first forward pass is slow; pay it before the first user
        return rec

    return RecommenderLoader(build)


def dashboard_factory(loader: RecommenderLoader) -> Callable[..., Dashboard]:
    """get_dashboard(progress=None): wait for the recommender (driving the page's progress bar), build once."""
    built: dict[str, Dashboard] = {}

    def get_dashboard(progress=None) -> Dashboard:
        def on_wait(done: int, total: int) -> None:
            if progress is not None:
                progress((done, total) if total else None, desc=t("loading"), unit="news")

        rec = loader.get(on_wait=on_wait if progress is not None else None)
        if "dash" not in built:
            built["dash"] = Dashboard(rec, media.image_linker(rec.corpus), _judgments(rec.settings))
        return built["dash"]

    return get_dashboard


def _judgments(settings: Settings):
    try:
        from newsrec.evaluation.judgments import JudgmentStore
    except ImportError:
        return None
    return JudgmentStore(settings)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ
    in_space = bool(env.get("SPACE_ID"))
    default_host = env.get("NEWSREC_HOST") or env.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if in_space else "127.0.0.1")
    default_port = int(env.get("NEWSREC_PORT") or env.get("GRADIO_SERVER_PORT") or 7860)
    parser = argparse.ArgumentParser(description="newsrec editorial dashboard")
    parser.add_argument("--host", default=default_host, help=f"interface to bind (default {default_host})")
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default {default_port})")
    args = parser.parse_args(argv)
    if in_space:
        args.host = "0.0.0.0"  # the Space's proxy reaches the app only on all interfaces
    return args


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)  # Gradio's own start-up probes
    args = parse_args(argv)
    started = time.perf_counter()
    settings = Settings.from_env()
    # Everything the main thread imports happens before the loader thread starts importing the model stack:
    # two threads importing torch at once can see it half-initialised. (settings.mode imports torch for CUDA.)
    gpu_concurrency = 1 if settings.mode == "qwen3-vl" else 2
    loader = make_loader(settings)
    demo = build_demo(dashboard_factory(loader), settings, gpu_concurrency, get_recommender=loader.get)
    loader.start()
    demo.queue(default_concurrency_limit=4)
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        **media.launch_options(settings.corpus, corpus_root(settings)),  # pictures only, nosniff (ui/media.py)
        css_paths=[path for path in (STYLE, NEWSROOM_STYLE) if path.exists()] or None,
        theme=gr.themes.Soft(font=["Inter", "system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"]),
        footer_links=["api", "settings"],
        prevent_thread_lock=True,
    )
    log.info("serving on http://%s:%d after %.1f s", args.host, args.port, time.perf_counter() - started)
    demo.block_thread()


if __name__ == "__main__":
    main()
