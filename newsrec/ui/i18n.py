"""Dashboard labels in English and Chinese.

One flat table instead of gettext catalogues: the dashboard has a few dozen strings and two languages,
and the table keeps every label next to its translation where a reviewer can check both at once.
"""

from __future__ import annotations

LANGUAGES = {"English": "en", "中文": "zh"}

LABELS: dict[str, dict[str, str]] = {
    "title": {"en": "newsrec · editorial dashboard", "zh": "newsrec · 编辑看板"},
    "subtitle": {
        "en": "Pick a reader, type a query (or none for their feed), and compare retrieval with the reranker.",
        "zh": "选择读者，输入查询（留空即为个性化推荐），对比召回结果与重排结果。",
    },
    "language": {"en": "Language", "zh": "界面语言"},
    "user": {"en": "Reader", "zh": "读者"},
    "persona": {"en": "Persona", "zh": "读者画像"},
    "history": {"en": "Reading history (newest first)", "zh": "阅读历史（最新在前）"},
    "no_history": {"en": "This reader has no history yet.", "zh": "该读者还没有阅读记录。"},
    "query": {"en": "Query", "zh": "查询"},
    "query_placeholder": {
        "en": "Empty query = the reader's “For you” feed",
        "zh": "留空即为该读者的“为你推荐”",
    },
    "examples": {"en": "Example queries", "zh": "示例查询"},
    "run": {"en": "Recommend", "zh": "推荐"},
    "reset": {"en": "Reset profile", "zh": "重置画像"},
    "controls": {"en": "Controls", "zh": "参数"},
    "k": {"en": "Results (k)", "zh": "结果数 (k)"},
    "candidates": {"en": "Candidates for the reranker", "zh": "重排候选数"},
    "diversity": {"en": "Diversity (0 = pure relevance)", "zh": "多样性（0 = 只看相关度）"},
    "freshness": {"en": "Freshness half-life in days (0 = off)", "zh": "时效半衰期（天，0 = 关闭）"},
    "categories": {"en": "Categories (empty = all)", "zh": "类别（留空 = 全部）"},
    "instruction": {"en": "Reranker instruction", "zh": "重排指令"},
    "tab_results": {"en": "Recommendations", "zh": "推荐结果"},
    "tab_side": {"en": "Side by side", "zh": "并排对比"},
    "tab_charts": {"en": "Charts", "zh": "图表"},
    "tab_system": {"en": "System", "zh": "系统"},
    "retrieval_list": {"en": "Retrieval only", "zh": "仅召回"},
    "reranked_list": {"en": "Reranked", "zh": "重排后"},
    "rerank_score": {"en": "rerank", "zh": "重排分"},
    "retrieval_score": {"en": "retrieval", "zh": "召回分"},
    "new": {"en": "new", "zh": "新"},
    "more_like_this": {"en": "More like this", "zh": "多推荐类似"},
    "not_interested": {"en": "Not interested", "zh": "不感兴趣"},
    "relevant": {"en": "Relevant", "zh": "相关"},
    "not_relevant": {"en": "Not relevant", "zh": "不相关"},
    "no_results": {
        "en": "No recommendations: try another query or fewer filters.",
        "zh": "没有结果：换个查询或减少筛选。",
    },
    "pick_user": {"en": "Pick a reader to start.", "zh": "请先选择一位读者。"},
    "feedback_note": {
        "en": "Session feedback: {liked} liked, {disliked} hidden. Reset restores the reader's profile.",
        "zh": "本次会话反馈：喜欢 {liked} 条，隐藏 {disliked} 条。“重置画像”可恢复原始画像。",
    },
    "judged": {"en": "Judgment saved", "zh": "判断已保存"},
    "judgments_unavailable": {"en": "Judgments are not available yet", "zh": "暂不支持保存判断"},
    "moved": {"en": "moved", "zh": "变动"},
    "stayed": {"en": "same rank", "zh": "名次不变"},
    "loading": {"en": "Building the news index (first run only)…", "zh": "正在构建新闻索引（仅首次运行）…"},
    "mode": {"en": "Mode", "zh": "模式"},
    "device": {"en": "Device", "zh": "设备"},
    "embedder": {"en": "Embedder", "zh": "向量模型"},
    "reranker": {"en": "Reranker", "zh": "重排模型"},
    "corpus": {"en": "Corpus", "zh": "语料"},
    "corpus_size": {"en": "{news} news · {users} readers", "zh": "{news} 条新闻 · {users} 位读者"},
    "timings": {"en": "Timings (ms)", "zh": "耗时（毫秒）"},
    "cache": {"en": "Rerank score cache", "zh": "重排分数缓存"},
    "cache_rate": {"en": "{hits}/{total} hits ({rate:.0%})", "zh": "命中 {hits}/{total}（{rate:.0%}）"},
    "scored": {"en": "Candidates scored", "zh": "已打分候选"},
    "chart_scores": {"en": "Score distributions", "zh": "分数分布"},
    "chart_shift": {"en": "Rank shift: retrieval → reranked", "zh": "名次变化：召回 → 重排"},
    "chart_mix": {"en": "Category mix: history vs recommendations", "zh": "类别构成：历史 vs 推荐"},
    "history_short": {"en": "history", "zh": "历史"},
    "recommended_short": {"en": "recommended", "zh": "推荐"},
    "evaluation": {"en": "Evaluation", "zh": "评估"},
}


def t(key: str, lang: str = "en", **values) -> str:
    """Label `key` in `lang` ("en" or "zh"), formatted with `values`; unknown keys show as themselves."""
    entry = LABELS.get(key)
    text = key if entry is None else entry.get(lang) or entry["en"]
    return text.format(**values) if values else text


def lang_code(choice: str | None) -> str:
    """Radio choice ("English" / "中文") or a code -> "en" / "zh"."""
    if choice in LANGUAGES.values():
        return str(choice)
    return LANGUAGES.get(choice or "", "en")
