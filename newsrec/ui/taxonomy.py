"""The demo corpus's subcategories in Chinese, for the cards' "category / subcategory" chips and filters.

Categories are translated by i18n.py (`cat_<name>`); subcategories are many and belong to the corpus's
taxonomy, so they live here. A subcategory not listed (an ingested corpus's own) shows as it is.
"""

from __future__ import annotations

__all__ = ["subcategory_name"]

SUBCATEGORIES_ZH = {
    "africa": "非洲", "agriculture": "农业", "ai": "人工智能", "aid": "援助", "asia": "亚洲",
    "autonomous": "自动驾驶", "aviation": "航空", "awards": "颁奖", "badminton": "羽毛球", "banking": "银行",
    "batteries": "电池", "beaches": "海滩", "biology": "生物", "cba": "CBA", "charging": "充电",
    "chips": "芯片", "cities": "城市", "climate": "气候", "commodities": "大宗商品", "computers": "电脑",
    "consumer": "消费", "cybersecurity": "网络安全", "destinations": "目的地", "development": "发展",
    "disaster": "灾害", "domestic": "国内游", "earnings": "财报", "economy": "经济", "environment": "环境",
    "ev": "电动车", "ev-battery": "动力电池", "f1": "F1", "fitness": "健身", "flu": "流感", "football": "足球",
    "games": "游戏", "gaming": "游戏", "golf": "高尔夫", "hospitals": "医院", "industry": "产业",
    "insurance": "保险", "internet": "互联网", "marathon": "马拉松", "market": "车市", "markets": "市场",
    "medicine": "医药", "mental-health": "心理健康", "mountains": "山地", "movies": "电影", "music": "音乐",
    "nba": "NBA", "nfl": "NFL", "nutrition": "营养", "outbound": "出境游", "paleontology": "古生物",
    "physics": "物理", "public-health": "公共卫生", "rail": "铁路", "real-estate": "房地产",
    "rebuilding": "重建", "recall": "召回", "rescue": "救援", "reviews": "评测", "robotics": "机器人",
    "sleep": "睡眠", "smartphones": "智能手机", "sodium-ion": "钠离子电池", "software": "软件",
    "space": "航天", "streaming": "流媒体", "swimming": "游泳", "table-tennis": "乒乓球", "tennis": "网球",
    "tips": "贴士", "trucks": "卡车", "tv": "电视", "variety": "综艺", "wearables": "可穿戴设备",
    "weather": "天气",
}  # fmt: skip


def subcategory_name(subcategory: str, lang: str) -> str:
    """`subcategory` in the page's language ("agriculture" -> "农业" in 中文); unknown ones as they are."""
    if lang == "zh":
        return SUBCATEGORIES_ZH.get(subcategory.lower(), subcategory)
    return subcategory
