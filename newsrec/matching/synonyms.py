"""A small table of abbreviations and synonyms that readers type for the same thing, in English and Chinese.

Why a hand-kept table: stemming joins word forms (charge, charging) and the encoder joins paraphrases
loosely, but neither knows that "EV" is an electric vehicle or that 人工智能 is what English headlines
call "AI" (USE puts 人工智能 nearer "robots" than "AI"). Each line is one group of interchangeable
phrases; a query phrase from a group matches an item that has any phrase of the group. The groups are
general news vocabulary, not the demo corpus's stories; keep them that way (no names of single stories),
and keep each group to phrases a reader would accept as the same thing.
"""

from __future__ import annotations

# One group per line, phrases separated by "|". Latin phrases are stemmed when used, so one form is enough.
_GROUPS = """
ai | artificial intelligence | 人工智能
ev | electric vehicle | electric car | 电动车 | 电动汽车 | 新能源车 | 新能源汽车
fast charge | fast charging | quick charge | rapid charging | 快充 | 超充 | 快速充电
solid state battery | solid state cell | 固态电池
sodium ion | 钠离子
earnings | quarterly results | results season | 财报 | 业绩
revenue | sales revenue | 营收
gdp | gross domestic product | economic growth | 经济增长
inflation | consumer prices | cpi | 通胀
exchange rate | currency | 汇率
stock market | stocks | shares | equities | 股市 | 股票
real estate | property market | housing market | 楼市 | 房地产
gold | bullion
singles day | double eleven | 双十一
smartphone | mobile phone | cell phone | 智能手机 | 手机
chip | chips | semiconductor | 芯片 | 半导体
robot | robots | 机器人
drone | drones | 无人机
self driving | driverless | autonomous driving | robotaxi | 无人驾驶 | 自动驾驶
football | soccer | 足球
table tennis | ping pong | 乒乓球
badminton | 羽毛球
basketball | 篮球
formula one | formula 1 | f1 | 一级方程式
marathon | 马拉松
swimming | 游泳
film | movie | cinema | 电影
box office | 票房
concert | 演唱会
tv series | tv drama | 电视剧 | 剧集
earthquake | quake | 地震
typhoon | 台风
flood | flooding | 洪水
medical | medicine | healthcare | health care | health | 医疗 | 医学
hospital | 医院
vaccine | vaccination | 疫苗
flu | influenza | 流感
sleep | 睡眠
ski | skiing | 滑雪
holiday | vacation | 假期 | 度假
flight | flights | airline | 航班 | 航空
climate change | global warming | 气候变化
space station | 空间站
"""


def synonym_groups() -> list[list[str]]:
    """The table's groups, each a list of phrases, in file order."""
    groups = []
    for line in _GROUPS.strip().splitlines():
        phrases = [phrase.strip() for phrase in line.split("|") if phrase.strip()]
        if len(phrases) > 1:
            groups.append(phrases)
    return groups
