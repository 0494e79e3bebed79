"""The Newsroom (编辑台) tab's layout and wiring; its handlers are plain functions in newsroom.py.

    with gr.Tab("Newsroom"):
        tab = build_newsroom_tab(get_desk, language)

The tree below reads like the page: badges and the rule tables, the rule editor (form controls; the kind
chooses which fields show), publish and rollback, story labels, then the what-if preview across a panel.
Wiring comes last. `NewsroomTab.relabel(lang)` gives one update per labelled component for the page's
language toggle, and `NewsroomTab.on_load` fills the tab from a deep link.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any

import gradio as gr

from newsrec.errors import NewsrecError
from newsrec.ui import newsroom
from newsrec.ui.charts import empty_figure
from newsrec.ui.i18n import lang_code, t
from newsrec.ui.newsroom import (
    BLOCK_TARGETS,
    BOOST_ON,
    COMPARES,
    FORM_FIELDS,
    KINDS,
    LEVELS,
    PANELS,
    QUOTA_MODES,
    SCOPES,
    RuleForm,
)  # fmt: skip

CHART_SLOTS = 4  # plots the preview can fill (the audit's charts; unused slots stay hidden)


def _choices(prefix: str, values, lang: str) -> list[tuple[str, str]]:
    return [(t(f"{prefix}{value.replace(':', '_')}", lang), value) for value in values]


def _friendly(fn: Callable) -> Callable:
    import functools

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except NewsrecError as error:
            raise gr.Error(str(error)) from None

    return wrapper


@dataclass
class NewsroomTab:
    """The tab's components (for app.py's outputs) and its language and deep-link hooks.

    `relabel(*relabel_inputs)` updates `labelled` then `overview`; `on_load(request)` updates the page's
    `gr.Tabs` (the tab a link names) then `load_outputs`.
    """

    state: Any
    labelled: list[Any]
    overview: list[Any]
    relabel_inputs: list[Any]
    relabel: Callable[..., list]
    load_outputs: list[Any]
    on_load: Callable[..., list]


def desk_factory(get_dashboard: Callable[..., Any]) -> Callable[[], newsroom.Desk]:
    """get_desk(): the Newsroom's Desk around the dashboard's recommender, built once (after the index build)."""
    built: dict[str, newsroom.Desk] = {}

    def get_desk() -> newsroom.Desk:
        if "desk" not in built:
            built["desk"] = newsroom.Desk(get_dashboard().rec)
        return built["desk"]

    return get_desk


def build_newsroom_tab(get_desk: Callable[[], newsroom.Desk], language) -> NewsroomTab:
    """Components and wiring of the tab; call inside `gr.Blocks` and a `gr.Tab`."""
    lang = "en"
    space = newsroom.public_space()
    desk_state = gr.State(newsroom.DeskState())
    labels: list[tuple[Any, str, dict]] = []  # (component, i18n key, extra update fields by language)

    def L(component, key: str, attr: str = "label", choices: tuple[str, Any] | None = None):  # noqa: N802
        labels.append((component, key, {"attr": attr, "choices": choices}))
        return component

    with gr.Column(elem_id="newsroom"):
        L(gr.Markdown(t("nr_intro", lang), elem_id="nr-intro"), "nr_intro", "value")
        L(gr.Markdown(t("nr_session_only", lang), visible=space, elem_id="nr-space-note"), "nr_session_only", "value")
        badges = gr.HTML(elem_id="nr-badges")
        draft_table = L(
            gr.Dataframe(
                newsroom.rule_rows(None, {}, lang, compare_to=newsroom.RULESET_NONE),
                label=t("nr_draft_rules", lang),
                interactive=False,
                wrap=True,
                elem_id="nr-draft",
            ),
            "nr_draft_rules",
        )
        with gr.Accordion(t("nr_live_rules", lang), open=False, elem_id="nr-live-box") as live_box:
            live_table = gr.Dataframe(
                newsroom.rule_rows(None, {}, lang), show_label=False, interactive=False, wrap=True, elem_id="nr-live"
            )
        L(live_box, "nr_live_rules")

        # --- the rule editor
        with gr.Accordion(t("nr_editor", lang), open=True, elem_id="nr-editor") as editor_box:
            with gr.Row(elem_id="nr-pick-row"):
                pick = L(gr.Dropdown(label=t("nr_pick_rule", lang), choices=[], elem_id="nr-pick", scale=3),
                         "nr_pick_rule")  # fmt: skip
                load = L(gr.Button(t("nr_load", lang), size="sm", elem_id="nr-load", scale=1, min_width=120),
                         "nr_load", "value")  # fmt: skip
                remove = L(
                    gr.Button(t("nr_remove", lang), size="sm", variant="stop", elem_id="nr-remove", scale=1,
                              min_width=120), "nr_remove", "value",
                )  # fmt: skip
            kind = L(
                gr.Dropdown(label=t("nr_kind", lang), choices=_choices("kind_", KINDS, lang), value="pin",
                            elem_id="nr-kind"), "nr_kind", choices=("kind_", KINDS),
            )  # fmt: skip
            with gr.Row(elem_id="nr-fields"):
                story = L(gr.Dropdown(label=t("nr_story", lang), choices=[], elem_id="nr-story", filterable=True,
                                      min_width=260), "nr_story")  # fmt: skip
                slot = L(gr.Slider(1, 30, value=1, step=1, label=t("nr_slot", lang), elem_id="nr-slot"), "nr_slot")
                target = L(
                    gr.Radio(_choices("on_", BLOCK_TARGETS, lang), value="story", label=t("nr_target", lang),
                             visible=False, elem_id="nr-target"), "nr_target", choices=("on_", BLOCK_TARGETS),
                )  # fmt: skip
                on = L(
                    gr.Radio(_choices("on_", BOOST_ON, lang), value="category", label=t("nr_on", lang),
                             visible=False, elem_id="nr-on"), "nr_on", choices=("on_", BOOST_ON),
                )  # fmt: skip
                publisher = L(gr.Dropdown(label=t("nr_publisher", lang), choices=[], visible=False,
                                          elem_id="nr-publisher"), "nr_publisher")  # fmt: skip
                keyword = L(gr.Textbox(label=t("nr_keyword", lang), visible=False, max_lines=1, elem_id="nr-keyword"),
                            "nr_keyword")  # fmt: skip
                label = L(gr.Dropdown(label=t("nr_label", lang), choices=[], allow_custom_value=True, visible=False,
                                      elem_id="nr-label"), "nr_label")  # fmt: skip
                category = L(gr.Dropdown(label=t("nr_category", lang), choices=[], visible=False,
                                         elem_id="nr-category"), "nr_category")  # fmt: skip
                language_pick = L(
                    gr.Dropdown(label=t("nr_language", lang), choices=[], visible=False, elem_id="nr-language"),
                    "nr_language",
                )
                half_life = L(gr.Number(value=24, minimum=1, label=t("nr_half_life", lang), visible=False,
                                        elem_id="nr-half-life"), "nr_half_life")  # fmt: skip
                weight = gr.Slider(1, newsroom.max_points(), value=5, step=1, visible=False, elem_id="nr-weight",
                                   label=t("nr_weight", lang, max=newsroom.max_points()))  # fmt: skip
                labels.append((weight, "nr_weight", {"attr": "label", "values": {"max": newsroom.max_points()}}))
                level = L(
                    gr.Radio(_choices("level_", LEVELS, lang), value="must-see", label=t("nr_level", lang),
                             visible=False, elem_id="nr-level"), "nr_level", choices=("level_", LEVELS),
                )  # fmt: skip
                quota_mode = L(
                    gr.Radio(_choices("quota_", QUOTA_MODES, lang), value="at_most", label=t("nr_quota_mode", lang),
                             visible=False, elem_id="nr-quota-mode"), "nr_quota_mode", choices=("quota_", QUOTA_MODES),
                )  # fmt: skip
                quota_k = L(gr.Number(value=2, minimum=0, precision=0, label=t("nr_quota_k", lang), visible=False,
                                      elem_id="nr-quota-k", min_width=90), "nr_quota_k")  # fmt: skip
                quota_n = L(gr.Number(value=10, minimum=1, precision=0, label=t("nr_quota_n", lang), visible=False,
                                      elem_id="nr-quota-n", min_width=90), "nr_quota_n")  # fmt: skip
                quota_m = L(gr.Number(value=1, minimum=1, precision=0, label=t("nr_quota_m", lang), visible=False,
                                      elem_id="nr-quota-m", min_width=90), "nr_quota_m")  # fmt: skip
                stories = L(gr.Dropdown(label=t("nr_stories", lang), choices=[], multiselect=True, visible=False,
                                        elem_id="nr-stories"), "nr_stories")  # fmt: skip
                reach_p = L(gr.Slider(1, 100, value=60, step=1, label=t("nr_reach_p", lang), visible=False,
                                      elem_id="nr-reach-p"), "nr_reach_p")  # fmt: skip
                reach_k = L(gr.Slider(1, 30, value=10, step=1, label=t("nr_reach_k", lang), visible=False,
                                      elem_id="nr-reach-k"), "nr_reach_k")  # fmt: skip
            scope = L(
                gr.Radio(_choices("scope_", SCOPES, lang), value="all", label=t("nr_scope", lang), elem_id="nr-scope"),
                "nr_scope", choices=("scope_", SCOPES),
            )  # fmt: skip
            with gr.Row(elem_id="nr-scope-fields"):
                seg_tag = L(gr.Dropdown(label=t("nr_seg_tag", lang), choices=[], visible=False, elem_id="nr-seg-tag"),
                            "nr_seg_tag")  # fmt: skip
                seg_reads = L(gr.Dropdown(label=t("nr_seg_reads", lang), choices=[], visible=False,
                                          elem_id="nr-seg-reads"), "nr_seg_reads")  # fmt: skip
                seg_lang = L(gr.Dropdown(label=t("nr_seg_lang", lang), choices=[], visible=False,
                                         elem_id="nr-seg-lang"), "nr_seg_lang")  # fmt: skip
                readers = L(gr.Dropdown(label=t("nr_readers", lang), choices=[], multiselect=True, visible=False,
                                        elem_id="nr-readers"), "nr_readers")  # fmt: skip
            with gr.Row(elem_id="nr-when"):
                valid_from = L(gr.Textbox(label=t("nr_valid_from", lang), max_lines=1, elem_id="nr-valid-from"),
                               "nr_valid_from")  # fmt: skip
                valid_until = L(gr.Textbox(label=t("nr_valid_until", lang), max_lines=1, elem_id="nr-valid-until"),
                                "nr_valid_until")  # fmt: skip
            with gr.Row(elem_id="nr-who"):
                author = L(gr.Textbox(label=t("nr_author", lang), max_lines=1, elem_id="nr-author"), "nr_author")
                note = L(gr.Textbox(label=t("nr_note", lang), max_lines=1, elem_id="nr-note"), "nr_note")
                rule_id = L(gr.Textbox(label=t("nr_rule_id", lang), max_lines=1, elem_id="nr-rule-id"), "nr_rule_id")
            save = L(gr.Button(t("nr_save", lang), variant="primary", elem_id="nr-save"), "nr_save", "value")
            status = gr.Markdown(elem_id="nr-status")
        L(editor_box, "nr_editor")

        # --- publish and roll back (not on a public Space: visitors' drafts stay in their session)
        with gr.Accordion(t("nr_publishing", lang), open=True, visible=not space, elem_id="nr-publishing") as pub_box:
            with gr.Row(elem_id="nr-publish-row"):
                token = L(gr.Textbox(label=t("nr_token", lang), type="password", max_lines=1,
                                     visible=newsroom.token_required(), elem_id="nr-token"), "nr_token")  # fmt: skip
                publish = L(gr.Button(t("nr_publish", lang), variant="primary", elem_id="nr-publish"),
                            "nr_publish", "value")  # fmt: skip
            with gr.Row(elem_id="nr-rollback-row"):
                version = L(gr.Dropdown(label=t("nr_version", lang), choices=[], elem_id="nr-version", scale=2),
                            "nr_version")  # fmt: skip
                rollback = L(gr.Button(t("nr_rollback", lang), elem_id="nr-rollback", scale=1, min_width=160),
                             "nr_rollback", "value")  # fmt: skip
            diff = gr.HTML(elem_id="nr-diff")
        L(pub_box, "nr_publishing")

        # --- sensitivity labels of a story
        with gr.Accordion(
            t("nr_labels_title", lang), open=False, visible=not space, elem_id="nr-labels-box"
        ) as labels_box:
            with gr.Row():
                label_story = L(gr.Dropdown(label=t("nr_story", lang), choices=[], elem_id="nr-label-story",
                                            filterable=True, scale=3), "nr_story")  # fmt: skip
                story_labels = L(gr.Dropdown(label=t("nr_labels", lang), choices=[], multiselect=True,
                                             allow_custom_value=True, elem_id="nr-story-labels", scale=2),
                                 "nr_labels")  # fmt: skip
            save_labels = L(gr.Button(t("nr_labels_save", lang), elem_id="nr-save-labels"), "nr_labels_save", "value")
        L(labels_box, "nr_labels_title")

        # --- the what-if preview across a panel
        with gr.Accordion(t("nr_preview", lang), open=True, elem_id="nr-preview") as preview_box:
            with gr.Row(elem_id="nr-panel-row"):
                panel = L(
                    gr.Radio(_choices("panel_", PANELS, lang), value="personas", label=t("nr_panel", lang),
                             elem_id="nr-panel"), "nr_panel", choices=("panel_", PANELS),
                )  # fmt: skip
                sample_n = L(gr.Number(value=100, minimum=1, precision=0, label=t("nr_sample_n", lang), visible=False,
                                       elem_id="nr-sample-n", min_width=100), "nr_sample_n")  # fmt: skip
                compare = L(
                    gr.Radio(_choices("compare_", COMPARES, lang), value="draft:live", label=t("nr_compare", lang),
                             elem_id="nr-compare"), "nr_compare", choices=("compare_", COMPARES),
                )  # fmt: skip
            with gr.Row(elem_id="nr-panel-segment", visible=False) as panel_segment:
                pv_tag = L(gr.Dropdown(label=t("nr_seg_tag", lang), choices=[], elem_id="nr-pv-tag"), "nr_seg_tag")
                pv_reads = L(gr.Dropdown(label=t("nr_seg_reads", lang), choices=[], elem_id="nr-pv-reads"),
                             "nr_seg_reads")  # fmt: skip
                pv_lang = L(gr.Dropdown(label=t("nr_seg_lang", lang), choices=[], elem_id="nr-pv-lang"), "nr_seg_lang")
            with gr.Row(elem_id="nr-run-row"):
                preview_k = L(gr.Slider(1, 30, value=10, step=1, label=t("nr_preview_k", lang), elem_id="nr-k"),
                              "nr_preview_k")  # fmt: skip
                run = L(gr.Button(t("nr_run_preview", lang), variant="primary", elem_id="nr-run", min_width=160),
                        "nr_run_preview", "value")  # fmt: skip
            summary = gr.Markdown(t("nr_preview_empty", lang), elem_id="nr-summary")
            plots = [gr.Plot(show_label=False, visible=False, elem_id=f"nr-chart-{i}") for i in range(CHART_SLOTS)]
            per_reader = L(
                gr.Dataframe(newsroom.empty_reader_table(lang), label=t("nr_per_reader", lang), interactive=False,
                             wrap=True, elem_id="nr-per-reader"), "nr_per_reader",
            )  # fmt: skip
            per_story = L(
                gr.Dataframe(newsroom.empty_story_table(lang), label=t("nr_per_story", lang), interactive=False,
                             wrap=True, elem_id="nr-per-story"), "nr_per_story",
            )  # fmt: skip
            with gr.Row(elem_id="nr-exports"):
                export_csv = L(gr.File(label=t("nr_export_csv", lang), file_count="multiple", interactive=False,
                                       visible=False, elem_id="nr-export-csv"), "nr_export_csv")  # fmt: skip
                export_html = L(
                    gr.DownloadButton(label=t("nr_export_html", lang), visible=False, elem_id="nr-export-html"),
                    "nr_export_html",  # a DownloadButton's value is its file: relabel its label
                )
        L(preview_box, "nr_preview")

    # --- wiring -------------------------------------------------------------------------------------------
    field_parts = {
        "story": story, "slot": slot, "target": target, "on": on, "publisher": publisher, "keyword": keyword,
        "label": label, "category": category, "language": language_pick, "half_life_h": half_life, "weight": weight,
        "level": level, "quota_mode": quota_mode, "quota_k": quota_k, "quota_n": quota_n, "quota_m": quota_m,
        "stories": stories, "reach_p": reach_p, "reach_k": reach_k, "seg_tag": seg_tag, "seg_reads": seg_reads,
        "seg_lang": seg_lang, "readers": readers,
    }  # fmt: skip
    form_parts = {**field_parts, "kind": kind, "rule_id": rule_id, "scope": scope, "valid_from": valid_from,
                  "valid_until": valid_until, "author": author, "note": note}  # fmt: skip
    form_names = [f.name for f in fields(RuleForm)]
    form_inputs = [form_parts[name] for name in form_names]
    choosers = [kind, target, on, quota_mode, scope]
    preview_parts = [summary, *plots, per_reader, per_story, export_csv, export_html]
    shown_parts = [field_parts[name] for name in FORM_FIELDS]
    overview = [badges, draft_table, live_table, pick, version]  # what every change to the rules refreshes

    def form_of(values) -> RuleForm:
        return RuleForm(**dict(zip(form_names, values, strict=True)))

    def show_fields(kind_value, target_value, on_value, mode_value, scope_value):
        shown = newsroom.visible_fields(kind_value, target_value, on_value, mode_value, scope_value)
        return [gr.update(visible=name in shown) for name in FORM_FIELDS]

    def overview_updates(desk: newsroom.Desk, state: newsroom.DeskState, lang: str, link: str = "") -> list:
        view = desk.overview(state, lang, link)
        return [
            view.badges,
            view.draft_rows,
            view.live_rows,
            gr.update(choices=view.rule_ids, value=None),
            gr.update(
                choices=view.versions, value=view.version if view.version in dict(view.versions).values() else None
            ),
        ]

    @_friendly
    def on_save(state, lang_choice, *values):
        desk, lang = get_desk(), lang_code(lang_choice)
        state, message = desk.save(state, form_of(values), lang)
        return state, *overview_updates(desk, state, lang), message

    @_friendly
    def on_remove(state, lang_choice, rule):
        desk, lang = get_desk(), lang_code(lang_choice)
        state, message = desk.remove(state, rule, lang)
        return state, *overview_updates(desk, state, lang), message

    @_friendly
    def on_pick(state, rule):
        form = get_desk().form_for(state, rule)
        shown = newsroom.visible_fields(form.kind, form.target, form.on, form.quota_mode, form.scope)
        updates = []
        for name in form_names:
            value = getattr(form, name)
            if name in FORM_FIELDS:
                updates.append(gr.update(value=value, visible=name in shown))
            else:
                updates.append(gr.update(value=value))
        return updates

    @_friendly
    def on_publish(state, lang_choice, who, secret):
        desk, lang = get_desk(), lang_code(lang_choice)
        state, message = desk.publish(state, who, secret, lang)
        return state, *overview_updates(desk, state, lang), message

    @_friendly
    def on_version(state, lang_choice, chosen):
        return get_desk().diff_html(state, chosen, lang_code(lang_choice))

    @_friendly
    def on_rollback(state, lang_choice, chosen, who, secret):
        desk, lang = get_desk(), lang_code(lang_choice)
        state, message = desk.rollback(state, chosen, who, secret, lang)
        return state, *overview_updates(desk, state, lang), message, desk.diff_html(state, chosen, lang)

    @_friendly
    def on_label_story(news_id):
        return gr.update(value=get_desk().labels_of(news_id))

    @_friendly
    def on_save_labels(state, lang_choice, news_id, chosen):
        desk, lang = get_desk(), lang_code(lang_choice)
        state, message = desk.set_labels(state, news_id, chosen, lang)
        return (
            state,
            message,
            gr.update(choices=desk.label_choices(state)),
            gr.update(choices=desk.label_choices(state)),
        )

    def on_panel(choice):
        return gr.update(visible=choice == "sample"), gr.update(visible=choice == "segment")

    def preview_updates(shown: newsroom.Preview) -> list:
        figures = [gr.update(value=fig, visible=True) for fig in shown.figures[:CHART_SLOTS]]
        figures += [gr.update(value=empty_figure(), visible=False)] * (CHART_SLOTS - len(figures))
        return [
            shown.summary, *figures, shown.per_reader, shown.per_story,
            gr.update(value=shown.csv_files, visible=True), gr.update(value=shown.html_file, visible=True),
        ]  # fmt: skip

    @_friendly
    def on_preview(state, lang_choice, panel_kind, n, tag, reads, reader_lang, compare_spec, k, progress=gr.Progress()):
        desk, lang = get_desk(), lang_code(lang_choice)
        spec = newsroom.panel_spec(panel_kind, n, tag, reads, reader_lang)
        progress(None, desc=t("nr_previewing", lang))
        state, shown = desk.preview(state, spec, compare_spec, int(k), lang)
        view = desk.overview(state, lang)
        return state, view.badges, *preview_updates(shown)

    for chooser in choosers:
        chooser.change(show_fields, choosers, shown_parts, queue=False)
    save.click(on_save, [desk_state, language, *form_inputs], [desk_state, *overview, status])
    remove.click(on_remove, [desk_state, language, pick], [desk_state, *overview, status])
    load.click(on_pick, [desk_state, pick], form_inputs)
    publish.click(on_publish, [desk_state, language, author, token], [desk_state, *overview, status])
    version.change(on_version, [desk_state, language, version], diff)
    rollback.click(on_rollback, [desk_state, language, version, author, token], [desk_state, *overview, status, diff])
    label_story.change(on_label_story, label_story, story_labels)
    save_labels.click(on_save_labels, [desk_state, language, label_story, story_labels],
                      [desk_state, status, label, story_labels])  # fmt: skip
    panel.change(on_panel, panel, [sample_n, panel_segment], queue=False)
    run.click(
        on_preview,
        [desk_state, language, panel, sample_n, pv_tag, pv_reads, pv_lang, compare, preview_k],
        [desk_state, badges, *preview_parts],
    )

    # --- language and deep links ------------------------------------------------------------------------
    def relabel(state, lang_choice, picked_version=None) -> list:
        lang = lang_code(lang_choice)
        updates = []
        for _component, key, extra in labels:
            values = extra.get("values") or {}
            update = {extra["attr"]: t(key, lang, **values)}
            if extra.get("choices"):
                prefix, options = extra["choices"]
                update["choices"] = _choices(prefix, options, lang)
            updates.append(gr.update(**update))
        desk = get_desk()
        if state is not None and state.report is not None:
            redrawn = preview_updates(desk.render(state.report, lang))
        else:
            redrawn = [t("nr_preview_empty", lang), *[gr.skip()] * CHART_SLOTS, newsroom.empty_reader_table(lang),
                       newsroom.empty_story_table(lang), gr.skip(), gr.skip()]  # fmt: skip
        diff_now = desk.diff_html(state, picked_version, lang)
        return updates + overview_updates(desk, state, lang) + redrawn + [diff_now, ""]  # the last message goes

    pickers = [story, label_story, stories, publisher, label, story_labels, category, language_pick, seg_tag, seg_reads,
               seg_lang, readers, pv_tag, pv_reads, pv_lang]  # fmt: skip

    @_friendly
    def on_load(request: gr.Request) -> list:
        """The tab as a deep link asks for it: the pickers' choices, the badges, a version, a panel, a compare."""
        params = getattr(request, "query_params", None) or {}
        wanted = newsroom.parse_link(params)
        lang = "zh" if str(params.get("lang") or "") == "zh" else "en"
        desk = get_desk()
        state = newsroom.DeskState(link=newsroom.link_query(wanted))
        choices = desk.choices(state)
        picker_updates = [gr.update(choices=choices[name]) for name in (
            "stories", "stories", "stories", "publishers", "labels", "labels", "categories", "languages", "tags",
            "categories", "languages", "readers", "tags", "categories", "languages")]  # fmt: skip
        view = desk.overview(state, lang, version=wanted.version)
        panel_kind, n, conditions = newsroom.panel_parts(wanted.panel)
        return [
            gr.update(selected="tab-newsroom") if wanted.tab == "newsroom" else gr.update(),
            state, view.badges, view.draft_rows, view.live_rows, gr.update(choices=view.rule_ids, value=None),
            gr.update(choices=view.versions, value=view.version), desk.diff_html(state, view.version, lang),
            *picker_updates, gr.update(value=panel_kind), gr.update(value=n, visible=panel_kind == "sample"),
            gr.update(visible=panel_kind == "segment"), gr.update(value=conditions.get("tag")),
            gr.update(value=conditions.get("reads")), gr.update(value=conditions.get("lang")),
            gr.update(value=wanted.compare),
        ]  # fmt: skip

    load_outputs = [
        desk_state, badges, draft_table, live_table, pick, version, diff, *pickers, panel, sample_n, panel_segment,
        pv_tag, pv_reads, pv_lang, compare,
    ]  # fmt: skip
    return NewsroomTab(
        state=desk_state,
        labelled=[component for component, _, _ in labels],
        overview=[*overview, *preview_parts, diff, status],
        relabel_inputs=[desk_state, language, version],
        relabel=relabel,
        load_outputs=load_outputs,
        on_load=on_load,
    )
