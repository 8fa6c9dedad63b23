"""Finding personal identifiers (个人信息) in text however people write them.

Pure functions: each returns the spans of a text that are, or are near enough to be, an
identifier; ``identity.Pseudonymiser`` replaces them. Numbers are found on a folded copy of the
text (full-width forms to ASCII, one character for one, so spans fit the original) in which
digit groups joined by spaces, dashes, dots or brackets are read as one number, then classified:
a mobile with or without +86, a landline with its area code and extension, an 18-character ID
number whatever its check digit (a mistyped one is still someone's number), and any other run of
15 or more digits (old ID numbers, bank cards). People's names are found with jieba's
segmentation and its dictionary's tags (人名 ``nr``, see ``tag``) and rules on surnames and the
words around them: jieba alone splits 赵桂兰 into 赵 + 桂兰 and misses 张大爷.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, lru_cache

import jieba
import jieba.posseg

jieba.setLogLevel(logging.WARNING)

# Full-width ASCII variants (０-９, Ａ-Ｚ, ＋, －, （） ...) and the ideographic space.
_FOLD = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_FOLD |= {ord(c): ord("-") for c in "‐‑‒–—―−﹣"} | {ord(c): ord(".") for c in "·•。"}
_GROUP = re.compile(r"\d+[Xx]?")
_JOINER = re.compile(r"[ \t\-._()/]{1,3}")
_EXTENSION = re.compile(r"\s*(?:-|转|分机|ext\.?|x)\s*(\d{1,5})(?!\d)", re.IGNORECASE)
_PHONE_CUE = re.compile(r"(?:电话|座机|固话|tel|联系方式|号码|拨打|打)\s*[:：]?\s*$", re.IGNORECASE)
_BIRTH = re.compile(r"(?:19|20)\d\d(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])")
# A mask already written ([手机 p-0123456789abcdef]) is not read again as a number.
MASKED = re.compile(r"\[[^\[\]\s]{1,6} p-[0-9a-f]{16}\]")


@dataclass(frozen=True)
class Found:
    """One identifier in a text: its kind, where it is, and its canonical value (for pseudonyms)."""

    kind: str  # id_number | mobile | landline | number | name
    start: int
    end: int
    value: str


def fold(text: str) -> str:
    """Full-width digits, letters and signs as ASCII, dashes as ``-``: the same length as ``text``."""
    return text.translate(_FOLD)


def classify(digits: str, before: str = "") -> str | None:
    """What a run of digits (an ID number may end in X) is, if it is an identifier at all."""
    if len(digits) == 18 and digits[:17].isdigit():
        # a birth date where GB 11643 puts it: an ID number, its check digit right or mistyped
        return "id_number" if _BIRTH.fullmatch(digits[6:14]) else "number"
    if not digits.isdigit():
        return None
    n = len(digits)
    if n == 11 and re.fullmatch(r"1[3-9]\d{9}", digits):
        return "mobile"
    if n in (13, 15) and re.fullmatch(r"(?:0086|86)1[3-9]\d{9}", digits):
        return "mobile"
    if 10 <= n <= 12 and re.fullmatch(r"0[1-9]\d{8,10}", digits):
        return "landline"
    if n >= 15:
        return "number"
    if n in (7, 8) and digits[0] in "23456789" and _PHONE_CUE.search(before[-12:]):
        return "landline"
    return None


def _canonical(kind: str, digits: str) -> str:
    if kind == "mobile":
        return digits[-11:]
    return digits.upper()


def find_numbers(text: str) -> list[Found]:
    """Every number in ``text`` that is an identifier, with separators and prefixes inside its span."""
    folded = fold(text)
    protected = [(m.start(), m.end()) for m in MASKED.finditer(folded)]
    groups = [m for m in _GROUP.finditer(folded) if not any(a <= m.start() < b for a, b in protected)]
    found: list[Found] = []
    i = 0
    while i < len(groups):
        # the longest chain of joined groups from i that is an identifier
        chain, best = [groups[i]], None
        before = folded[max(0, groups[i].start() - 16):groups[i].start()]
        for j in range(i, len(groups)):
            if j > i:
                gap = folded[groups[j - 1].end():groups[j].start()]
                # 138.1234.5678 is a number, 1.0015695780002716 a decimal
                if not _JOINER.fullmatch(gap) or (gap == "." and max(len(groups[j - 1][0]), len(groups[j][0])) > 4):
                    break
                chain.append(groups[j])
            digits = "".join(g[0] for g in chain)
            if len(digits) > 19:
                break
            kind = classify(digits, before)
            if kind is None and digits[-1] in "Xx":
                kind = classify(digits[:-1], before)
            if kind in ("number", "landline") and re.search(r"\d\.$", before):
                kind = None  # the fraction of a decimal
            if kind:
                best = (j, kind, digits)
        if best is None:
            i += 1
            continue
        j, kind, digits = best
        start, end = groups[i].start(), groups[j].end()
        if kind != "id_number" and digits[-1] in "Xx":
            end, digits = end - 1, digits[:-1]  # the X was the next word's
        if kind == "mobile" or kind == "landline":  # +86 / (+86) / 0086 and an extension belong to it
            prefix = re.search(r"(?:\(?\+\s*\)?|\(\+?86\)\s*)$", folded[max(0, start - 8):start])
            if prefix:
                start -= len(prefix[0])
            if kind == "landline" and (ext := _EXTENSION.match(folded, end)):
                end = ext.end()
            if folded[start - 1:start] == "(" and ")" in folded[start:end]:
                start -= 1  # (0411)84567890
        found.append(Found(kind, start, end, _canonical(kind, digits)))
        i = j + 1
    return found


# -- names (人名) ------------------------------------------------------------------------------

COMPOUND_SURNAMES = frozenset("欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 令狐 夏侯 司徒 端木 独孤 南宫 西门".split())
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任"
    "沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔"
    "向汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌"
    "毕单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦"
    "麦褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩"
    "明佘池查麻苑迟邝官封谈匡鞠惠荆乐冀郁胥南班储原栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻位厉伊仝郜海阚花权强"
    "帅屠豆朴盖练廉禹井祖漆巴丰支卿国狄平计索宣晋相初门云容敬来扈晁芮都普阙浦戈伏鹿薄邸雍辜羊阿乌母裘亓"
    "修邰赫杭况那宿鲜印逯隆茹诸战慕危玉银亢嵇公哈湛宾戎勾茅利於呼居揭干但尉冶斯元束檀衣信展阴昝智幸奉植"
    "衡富尧闭由")
HONORIFICS = ("大爷", "大妈", "大娘", "大伯", "大叔", "大婶", "大哥", "大姐", "阿姨", "师傅", "女士", "先生",
              "老师", "奶奶", "爷爷", "老太", "老汉", "同志", "经理", "主任", "书记", "队长", "老板", "某某", "某")
# Words a name follows (居民赵桂兰, 报警人马晓东, 501室董立新) and words that follow a name (张伟称,
# 闫文革同意): a name found by its surname alone needs both; one jieba tags 人名 needs one.
PERSON_BEFORE = tuple(
    "老人 居民 村民 业主 住户 租户 户主 房东 当事人 来电人 报警人 求助人 举报人 反映人 联系人 监护人 网格员 调解员 楼长"
    " 保安 老师 医生 护士 学生 儿子 女儿 丈夫 妻子 老婆 老公 前妻 前夫 母亲 父亲 爷爷 奶奶 孙子 孙女 哥哥 姐姐 弟弟"
    " 妹妹 邻居 孩子 低保户 困难户 人员 患者 男子 女子 员工 司机 老板 店主 民警 辅警 社工 志愿者 姓名 名叫 叫做 嫌疑人"
    " 对象 负责人 家属 亲属 朋友 同事 残疾人 申请人 车主 房主 机主 驾驶员 驾驶人 受害人 被害人 证人 代理人 书记"
    " 主任 队长 经理 据 请 经查 室 号 与 和 同 跟 及 被 了 、".split())
PERSON_AFTER = tuple(
    "反映 称 说 表示 同意 拒绝 投诉 举报 提到 介绍 要求 希望 承认 认为 情绪 报警 来电 求助 家 夫妇 一家 等 与 和 同 跟"
    " 及 因 系 是 今年 现年 岁 本人 的 殴打 打 骂 辱骂 未 没 不 已 也 都 就 又 还 曾 将 被 把 对 向 到 在 于 长期 多次"
    " 经常 一直 近期 最近 自称 声称 患有 独居 住 兄弟 姐妹 夫妻 母子 父子 母女 父女 ， 。 、 ； ： ,".split()) + HONORIFICS
# What ends a role, a family or a place (申请人, 曹家, 张家口, 马的), never a given name here.
NOT_NAME_ENDS = ("人", "员", "者", "户", "家", "口", "的", "了", "着", "过", "吗", "呢", "吧", "啊")
PLACE_AFTER = ("社区", "街道", "小区", "路", "街", "村", "镇", "乡", "区", "县", "市", "广场", "大厦", "公园", "山庄",
               "派出所", "医院", "学校", "中学", "小学", "幼儿园", "花园", "家园", "公司", "超市", "大桥", "病虫害", "庄")
_CUES_GLUED = tuple(w for w in PERSON_BEFORE if len(w) >= 2) + ("员", "人", "户", "室")
PLACE_ENDS = ("路", "街", "巷", "道", "村", "屯", "镇", "乡", "区", "县", "市", "省", "港", "湾", "桥", "站", "园")
WORD = 100  # 楼道 (100), 马路 (660) are words; 梁国 (14), 上官 (67) begin names as often
COMMON = 1000  # a word jieba's dictionary counts this often (安全, 居民, 于是) does not begin a name
_NAME_FLAGS = ("nr", "nrt", "nrfg")
_NOT_A_NAME_START = ("c", "p", "d", "u", "uj", "ul", "t", "f", "q")  # 于是, 和平: a word, not a surname
_HAN = re.compile(r"[\u4e00-\u9fff]+")
_BOUNDARY = re.compile(r"[\s\d\W]")


def _surname_of(word: str) -> int:
    """The length of the surname ``word`` starts with (2 for 欧阳), or 0."""
    if word[:2] in COMPOUND_SURNAMES:
        return 2
    return 1 if word[:1] in SURNAMES else 0


@cache
def _tokenizer() -> jieba.posseg.POSTokenizer:
    tokenizer = jieba.posseg.POSTokenizer(jieba.Tokenizer())
    tokenizer.tokenizer.initialize()
    return tokenizer


def _common_word_at(token: tuple[str, str] | None) -> bool:
    return token is not None and len(token[0]) >= 2 and token[1] not in _NAME_FLAGS \
        and _tokenizer().tokenizer.FREQ.get(token[0], 0) >= COMMON


def _dictionary_word(word: str) -> bool:
    """Whether jieba's dictionary has ``word``, often enough, as something other than a name."""
    tokenizer = _tokenizer()
    return tokenizer.tokenizer.FREQ.get(word, 0) >= WORD and tokenizer.word_tag_tab.get(word, "") not in _NAME_FLAGS


def warm_up() -> None:
    """Load jieba's dictionary now (about a second) rather than with the first event."""
    _tokenizer()


@lru_cache(maxsize=65536)
def _cut(text: str) -> tuple[tuple[str, str], ...]:
    return tuple(tag(text))


def tag(text: str) -> list[tuple[str, str]]:
    """Words and their part of speech: jieba's segmentation (its HMM finds words it does not
    know, such as most given names), and the tag its dictionary gives each word. A word the
    HMM found, not in the dictionary, is tagged ``nr`` when it begins with a surname and
    ``x`` otherwise. jieba.posseg's own HMM tags unknown words too, at five times the cost (500 µs
    a 24-character text on these machines), which the pipeline cannot pay on every field."""
    tokenizer = _tokenizer()
    out = []
    for word in tokenizer.tokenizer.cut(text, HMM=True):
        flag = tokenizer.word_tag_tab.get(word)
        if flag is None:
            flag = "nr" if 2 <= len(word) <= 4 and _HAN.fullmatch(word) and _surname_of(word) else "x"
        out.append((word, flag))
    return out


# What may stand right before a name (a verb, a preposition: 发现, 被, 据) and right after it (a
# verb, an adverb, a time: 称, 同意, 本周), as jieba tags the words around it on their own.
_FLAGS_BEFORE = ("v", "vn", "p", "c", "f")
_FLAGS_AFTER = ("v", "vn", "vd", "vi", "d", "ad", "p", "c", "t", "r", "u", "uj", "ul")


def _named_before(text: str, start: int, ending: dict[int, str]) -> bool:
    """Whether a name may begin at ``start``; ``ending`` maps where jieba's words end to their tags."""
    if start and text[start - 1] == "]" and MASKED.search(text, max(0, start - 30), start):
        return False
    if start == 0 or (_BOUNDARY.match(text[start - 1]) and not text[start - 1].isdigit()):
        return True
    if text.endswith(PERSON_BEFORE, 0, start):
        return True
    flag = ending.get(start)
    if flag is None:  # jieba's word runs across: tag what is before on its own
        words = _cut(text[max(0, start - 8):start])
        flag = words[-1][1] if words else ""
    return flag in _FLAGS_BEFORE


def _named_after(text: str, end: int, starting: dict[int, str]) -> bool:
    """Whether a name may end at ``end``; ``starting`` maps where jieba's words begin to their tags."""
    if MASKED.match(text, end):
        return False  # a mask is no word boundary: 时发现[姓名 …] is no name either
    if end >= len(text) or (_BOUNDARY.match(text[end]) and not text[end].isdigit()) \
            or text.startswith(PERSON_AFTER, end):
        return True
    if text.startswith(PLACE_AFTER, end):
        return False
    flag = starting.get(end)
    if flag is None:
        words = _cut(text[end:end + 8])
        flag = words[0][1] if words else ""
    return flag in _FLAGS_AFTER


def find_names(text: str) -> list[Found]:
    """People's names in free Chinese text (张伟, 赵桂兰, 欧阳娜娜, 张大爷, 老赵, 王某某)."""
    if not _HAN.search(text):
        return []
    tokens, at = [], 0
    for word, flag in tag(text):
        tokens.append((word, flag, at))
        at += len(word)
    tokens_at = {start: (word, flag) for word, flag, start in tokens}
    flag_at = {start: flag for _, flag, start in tokens}
    flag_ending = {start + len(word): flag for word, flag, start in tokens}
    taken = [(m.start(), m.end()) for m in MASKED.finditer(text)]
    found: list[Found] = []

    def add(start: int, end: int) -> bool:
        word = text[start:end]
        if end - start < 2 or any(a < end and start < b for a, b in taken) or text.startswith(PLACE_AFTER, end) \
                or word.endswith(NOT_NAME_ENDS) or word in HONORIFICS or word in PERSON_BEFORE:
            return False
        taken.append((start, end))
        found.append(Found("name", start, end, text[start:end]))
        return True

    # a surname jieba cut off a given name it tags as a person's (于 + 海涛, 周 + 红梅)
    for (word, _, start), (given, flag, _) in zip(tokens, tokens[1:]):
        if _surname_of(word) == len(word) and flag in _NAME_FLAGS and len(given) <= 2 \
                and _named_before(text, start, flag_ending):
            add(start, start + len(word) + len(given))
    # what jieba tags as a person, where the context allows one
    for word, flag, start in tokens:
        end = start + len(word)
        if flag not in _NAME_FLAGS or not (_named_before(text, start, flag_ending) or _named_after(text, end, flag_at)):
            continue
        if len(word) in (2, 3) and word[0] in "老小" and word[1] in SURNAMES:
            add(start, end)  # 老赵, 小孙
        elif (s := _surname_of(word)) and 2 <= len(word) <= 3 + (s == 2):
            add(start, end)  # 李明, 马晓东, 欧阳娜娜
    # a surname and one or two characters, a name by what is on both sides (赵 + 桂兰, 董 + 立新)
    for i in range(len(text)):
        if text[i] in "老小" and text[i + 1:i + 2] in SURNAMES and not _dictionary_word(text[i:i + 2]) \
                and _named_before(text, i, flag_ending) and _named_after(text, i + 2, flag_at):
            add(i, i + 2)  # 老宋说, 小李已经: 小时, 老师 are words
            continue
        s = _surname_of(text[i:i + 2])
        # where jieba begins a word, or where it glued the surname to a cue (报警人马晓东: 人马)
        if not s or not (i in tokens_at or text.endswith(_CUES_GLUED, 0, i)):
            continue
        if flag_at.get(i) in _NOT_A_NAME_START or _common_word_at(tokens_at.get(i)) \
                or _common_word_at((text[i:i + 2], "")) or not _named_before(text, i, flag_ending):
            continue
        honorific = next((h for h in HONORIFICS if text.startswith(h, i + s)), None)
        if honorific:
            add(i, i + s + len(honorific))  # 张大爷, 刘女士, 王某某
            continue
        if _dictionary_word(text[i:i + 2]):
            continue  # 楼道, 马路, 宣传: a word, not a surname and a given name
        for given in (2, 1):
            end = i + s + given
            if _HAN.fullmatch(text[i + s:end] or "-") and not text.endswith(PLACE_ENDS, 0, end) \
                    and _named_after(text, end, flag_at) and add(i, end):
                break
    return sorted(found, key=lambda f: f.start)


def replace(text: str, found: list[Found], mask: Callable[[Found], str]) -> str:
    """``text`` with each span found (in order, not overlapping) replaced by its mask."""
    for f in reversed(found):
        text = text[:f.start] + mask(f) + text[f.end:]
    return text


def find_identifiers(text: str) -> list[Found]:
    """Numbers first, then names in what is left: spans that do not overlap, in order."""
    numbers = find_numbers(text)
    names = [n for n in find_names(text) if not any(f.start < n.end and n.start < f.end for f in numbers)]
    return sorted(numbers + names, key=lambda f: f.start)
