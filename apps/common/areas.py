"""Administrative-division reference data (GB/T 2260) used by the validators."""

from __future__ import annotations

from typing import Final

__all__ = ["PROVINCE_CODES", "ZHENGZHOU_AREAS"]

#: Two-digit provincial-level codes: mainland provinces, autonomous regions and
#: municipalities, plus Taiwan (71), Hong Kong (81) and Macao (82).
PROVINCE_CODES: Final[frozenset[str]] = frozenset(
    [str(code) for code in range(11, 16)]  # 11-15 北京 天津 河北 山西 内蒙古
    + [str(code) for code in range(21, 24)]  # 21-23 辽宁 吉林 黑龙江
    + [str(code) for code in range(31, 38)]  # 31-37 上海 江苏 浙江 安徽 福建 江西 山东
    + [str(code) for code in range(41, 47)]  # 41-46 河南 湖北 湖南 广东 广西 海南
    + [str(code) for code in range(50, 55)]  # 50-54 重庆 四川 贵州 云南 西藏
    + [str(code) for code in range(61, 66)]  # 61-65 陕西 甘肃 青海 宁夏 新疆
    + ["71", "81", "82"]  # 台湾 香港 澳门
)

#: County-level divisions of Zhengzhou (郑州市, 4101) → Chinese name.  Treat as read-only.
ZHENGZHOU_AREAS: Final[dict[str, str]] = {
    "410102": "中原区",
    "410103": "二七区",
    "410104": "管城回族区",
    "410105": "金水区",
    "410106": "上街区",
    "410108": "惠济区",
    "410122": "中牟县",
    "410181": "巩义市",
    "410182": "荥阳市",
    "410183": "新密市",
    "410184": "新郑市",
    "410185": "登封市",
}
