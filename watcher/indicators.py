"""The indicator registry: the project's public metric vocabulary.

Ids follow ``kpi-reference.md`` and never change (aliases are fine). Each entry
knows its direction, which is what turns "on the wrong side of a target" into a
comparison, and its valid range, which is what rejects a rate of 3.5 sent as
"3.5 percent" without the percent sign.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

from pydantic import BaseModel, ConfigDict

from watcher.limits import METRIC_MAX_DAYS, METRIC_MAX_HOURS, METRIC_MAX_VALUE


class Direction(StrEnum):
    HIGHER_IS_BETTER = "higher"
    LOWER_IS_BETTER = "lower"


class Unit(StrEnum):
    FRACTION = "fraction"
    CURRENCY = "currency"
    COUNT = "count"
    HOURS = "hours"
    DAYS = "days"
    SCORE = "score"
    TIMES_PER_YEAR = "times_per_year"
    RATIO = "ratio"


class Cycle(StrEnum):
    REALTIME = "realtime"
    DAILY = "daily"  # the daily watch (issue #17): watched day by day, on no scorecard
    MONTHLY = "monthly"
    QUARTERLY = "quarterly"
    ANNUAL = "annual"


class Dimension(StrEnum):
    PERFORMANCE = "performance"
    EFFICIENCY = "efficiency"
    CUSTOMER = "customer"
    COMPLIANCE = "compliance"
    PLATFORM = "platform"


class Indicator(BaseModel):
    model_config = ConfigDict(frozen=True)

    id: str
    dimension: Dimension
    unit: Unit
    direction: Direction
    cycle: Cycle
    name_en: str
    name_zh: str
    minimum: float | None = 0.0
    maximum: float | None = None

    def name(self, language: str) -> str:
        return self.name_zh if language.lower().startswith("zh") else self.name_en

    @property
    def ceiling(self) -> float:
        """The largest valid value: ``maximum`` (None: the metric has no bound of its own,
        and a rollup sums it) or else the unit's ceiling."""
        return ceiling(self.unit, self.maximum)

    def is_worse(self, value: float, reference: float) -> bool:
        """True when ``value`` is on the wrong side of ``reference`` (strictly)."""
        if self.direction is Direction.HIGHER_IS_BETTER:
            return value < reference
        return value > reference


def ceiling(unit: Unit, maximum: float | None) -> float:
    """Nothing is unbounded: a duration past a year, or a count, amount or ratio past
    METRIC_MAX_VALUE, is an export or unit error, never data (docs/limits.md)."""
    if maximum is not None:
        return maximum
    return {Unit.HOURS: METRIC_MAX_HOURS, Unit.DAYS: METRIC_MAX_DAYS}.get(unit,
                                                                        METRIC_MAX_VALUE)


def _i(id_: str, dim: Dimension, unit: Unit, direction: Direction, cycle: Cycle,
       en: str, zh: str, maximum: float | None = None, minimum: float | None = 0.0) -> Indicator:
    if unit is Unit.FRACTION and maximum is None:
        maximum = 1.0
    return Indicator(id=id_, dimension=dim, unit=unit, direction=direction, cycle=cycle,
                     name_en=en, name_zh=zh, minimum=minimum, maximum=maximum)


_P, _E, _C, _K, _X = (Dimension.PERFORMANCE, Dimension.EFFICIENCY, Dimension.CUSTOMER,
                      Dimension.COMPLIANCE, Dimension.PLATFORM)
_UP, _DOWN = Direction.HIGHER_IS_BETTER, Direction.LOWER_IS_BETTER
_M, _Q, _A, _R, _D = (Cycle.MONTHLY, Cycle.QUARTERLY, Cycle.ANNUAL, Cycle.REALTIME,
                      Cycle.DAILY)
_F = Unit.FRACTION

INDICATORS: Final[dict[str, Indicator]] = {i.id: i for i in (
    # 1-17: the assessment system
    _i("gmv", _P, Unit.CURRENCY, _UP, _M, "GMV", "销售额"),
    _i("gmv_organic", _P, Unit.CURRENCY, _UP, _M, "Organic GMV", "自然流量销售额"),
    _i("gmv_ads", _P, Unit.CURRENCY, _UP, _M, "Ad-driven GMV", "广告销售额"),
    _i("net_margin", _P, _F, _UP, _M, "Net margin", "利润率", minimum=-1.0),
    _i("conversion_rate", _P, _F, _UP, _M, "Conversion rate", "转化率"),
    _i("new_customer_share", _P, _F, _UP, _M, "New-customer share", "新客占比"),
    _i("new_category_share", _P, _F, _UP, _A, "New-category contribution", "品类拓展贡献"),
    _i("inventory_turnover", _E, Unit.TIMES_PER_YEAR, _UP, _M, "Inventory turnover",
       "库存周转率"),
    _i("stockout_rate", _E, _F, _DOWN, _M, "Stockout rate", "缺货率"),
    _i("order_processing_hours", _E, Unit.HOURS, _DOWN, _M, "Order handling time",
       "订单处理时效"),
    _i("delivery_success_rate", _E, _F, _UP, _M, "Delivery success rate", "物流妥投率"),
    _i("positive_review_rate", _C, _F, _UP, _Q, "Positive review rate", "好评率"),
    _i("dispute_rate", _C, _F, _DOWN, _Q, "Dispute rate", "纠纷率"),
    _i("dispute_win_rate", _C, _F, _UP, _Q, "Dispute win rate", "纠纷胜诉率"),
    _i("repurchase_rate", _C, _F, _UP, _Q, "Repurchase rate", "复购率"),
    _i("ltv_growth", _C, Unit.RATIO, _UP, _A, "LTV growth", "用户生命周期价值增长", minimum=-1.0),
    _i("account_health_score", _K, Unit.SCORE, _UP, _R, "Account health score", "账号健康分",
       maximum=100.0),
    _i("penalty_count", _K, Unit.COUNT, _DOWN, _R, "Penalties", "违规处罚次数"),
    # the major ones among penalty_count (suspension or deactivation, frozen funds, selling
    # privileges removed): a major violation also fails the month and lowers the grade
    _i("major_penalty_count", _K, Unit.COUNT, _DOWN, _R, "Major penalties", "重大违规处罚次数"),
    _i("risk_response_hours", _K, Unit.HOURS, _DOWN, _Q, "Risk response time", "突发风险处理时效"),
    # platform-native health metrics
    _i("order_defect_rate", _X, _F, _DOWN, _R, "Order defect rate", "订单缺陷率"),
    _i("late_shipment_rate", _X, _F, _DOWN, _R, "Late shipment rate", "迟发率"),
    _i("pre_fulfillment_cancellation_rate", _X, _F, _DOWN, _R, "Pre-fulfilment cancellation rate",
       "配送前取消率"),
    _i("valid_tracking_rate", _X, _F, _UP, _R, "Valid tracking rate", "有效追踪率"),
    _i("on_time_delivery_rate", _X, _F, _UP, _R, "On-time delivery rate", "准时交货率"),
    _i("chat_response_rate", _X, _F, _UP, _R, "Chat response rate", "聊天回复率"),
    _i("penalty_points", _X, Unit.COUNT, _DOWN, _R, "Penalty points", "扣分"),
    # platform-native, from the source adapters (docs/platform-mapping.md)
    _i("order_defect_rate_afn", _X, _F, _DOWN, _R, "Order defect rate (FBA)", "订单缺陷率（FBA）"),
    _i("order_defect_rate_mfn", _X, _F, _DOWN, _R, "Order defect rate (seller-fulfilled)",
       "订单缺陷率（自配送）"),
    _i("unit_on_time_delivery_rate", _X, _F, _UP, _R, "Unit on-time delivery rate",
       "单位准时交货率"),
    _i("invoice_defect_rate", _X, _F, _DOWN, _R, "Invoice defect rate", "发票缺陷率"),
    _i("policy_violation_count", _X, Unit.COUNT, _DOWN, _R, "Policy violations", "政策违规数"),
    _i("listing_policy_violation_count", _X, Unit.COUNT, _DOWN, _R, "Listing policy violations",
       "上架政策违规"),
    _i("ip_complaint_count", _X, Unit.COUNT, _DOWN, _R, "Intellectual-property complaints",
       "知识产权投诉"),
    _i("suspected_ip_violation_count", _X, Unit.COUNT, _DOWN, _R,
       "Suspected intellectual-property violations", "涉嫌侵犯知识产权"),
    _i("authenticity_complaint_count", _X, Unit.COUNT, _DOWN, _R,
       "Product authenticity complaints", "商品真实性买家投诉"),
    _i("condition_complaint_count", _X, Unit.COUNT, _DOWN, _R, "Product condition complaints",
       "商品状况买家投诉"),
    _i("safety_complaint_count", _X, Unit.COUNT, _DOWN, _R, "Product safety complaints",
       "商品安全投诉"),
    _i("food_product_safety_issue_count", _X, Unit.COUNT, _DOWN, _R,
       "Food and product safety issues", "食品和商品安全问题"),
    _i("restricted_product_violation_count", _X, Unit.COUNT, _DOWN, _R,
       "Restricted product policy violations", "违反受限商品政策"),
    _i("other_policy_violation_count", _X, Unit.COUNT, _DOWN, _R, "Other policy violations",
       "其他违反政策"),
    _i("review_policy_violation_count", _X, Unit.COUNT, _DOWN, _R,
       "Product review policy violations", "违反买家商品评论政策"),
    _i("policy_warning_count", _X, Unit.COUNT, _DOWN, _R, "Policy violation warnings",
       "违反政策警告"),
    _i("document_request_count", _X, Unit.COUNT, _DOWN, _R, "Document requests", "文件请求"),
    _i("account_warning_count", _X, Unit.COUNT, _DOWN, _R, "Account warnings", "账户警告"),
    _i("account_at_risk", _X, Unit.COUNT, _DOWN, _R, "Account at risk (1 = yes)", "账户有风险",
       maximum=1.0),
    _i("account_deactivated", _X, Unit.COUNT, _DOWN, _R, "Account deactivated (1 = yes)",
       "账户已停用", maximum=1.0),
    _i("account_suspended", _X, Unit.COUNT, _DOWN, _R, "Account suspended (1 = yes)",
       "账户已暂停", maximum=1.0),
    _i("account_status_unknown", _X, Unit.COUNT, _DOWN, _R,
       "Account status not recognised (1 = yes)", "账户状态未识别", maximum=1.0),
    _i("ahr_score", _X, Unit.SCORE, _UP, _R, "Amazon account health rating (0-1000)",
       "亚马逊账户健康评级", maximum=1000.0),
    _i("non_fulfillment_rate", _X, _F, _DOWN, _R, "Non-fulfilment rate", "订单未完成率"),
    _i("cancellation_rate", _X, _F, _DOWN, _R, "Cancellation rate", "取消率"),
    _i("return_refund_rate", _X, _F, _DOWN, _R, "Return/refund rate", "退货退款率"),
    _i("preparation_days", _X, Unit.DAYS, _DOWN, _R, "Preparation time", "备货时间"),
    _i("chat_response_hours", _X, Unit.HOURS, _DOWN, _R, "Chat response time", "聊天回复时间"),
    _i("shop_rating", _X, Unit.SCORE, _UP, _R, "Shop rating (0-5)", "店铺评分", maximum=5.0),
    _i("listing_violation_count", _X, Unit.COUNT, _DOWN, _R, "Listing violations", "商品违规数"),
    _i("ongoing_punishment_count", _X, Unit.COUNT, _DOWN, _R, "Ongoing punishments",
       "进行中的处罚"),
    _i("punishment_tier_max", _X, Unit.COUNT, _DOWN, _R, "Highest ongoing punishment tier",
       "最高处罚等级", maximum=5.0),
    _i("refunds", _X, Unit.CURRENCY, _DOWN, _R, "Refunds", "退款金额"),
    _i("cancellation_return_rate", _X, _F, _DOWN, _R, "Cancellation and return rate",
       "取消退货率"),
    _i("refund_rate", _X, _F, _DOWN, _R, "Refund rate", "退款率"),
    _i("ad_share_of_gmv", _P, _F, _DOWN, _M, "Ad share of GMV", "广告销售占比"),
    # the daily watch of the operations job (issue #17; docs/rules.md, "Rules on history")
    _i("average_order_value", _P, Unit.CURRENCY, _UP, _D, "Average order value", "客单价"),
    # ad spend over ad sales: above 100 % when the ads cost more than they sell
    _i("acos", _P, _F, _DOWN, _D, "ACOS (ad spend / ad sales)", "广告销售成本比（ACOS）",
       maximum=10.0),
    _i("ad_roi", _P, Unit.RATIO, _UP, _D, "Ad ROI (ad sales / ad spend)", "广告投产比（ROI）"),
    _i("return_rate", _C, _F, _DOWN, _D, "Return rate", "退货率"),
    _i("cs_first_response_hours", _C, Unit.HOURS, _DOWN, _D,
       "Customer-service first response time", "客服首次回复时效"),
    _i("cs_resolution_rate", _C, _F, _UP, _D, "Customer-service resolution rate",
       "客服问题解决率"),
)}

# Raw counts and amounts that may arrive beside (or instead of) the rates derived from
# them (watcher/derive.py). They validate and format like indicators, but stay out of
# INDICATORS: they are inputs, not assessed on their own, so no PIP or platform-target
# form is compiled for them.
RAW_FIELDS: Final[dict[str, Indicator]] = {i.id: i for i in (
    _i("orders", _P, Unit.COUNT, _UP, _M, "Orders", "订单数"),
    _i("visitors", _P, Unit.COUNT, _UP, _M, "Visitors", "访客数"),
    _i("cogs", _E, Unit.CURRENCY, _UP, _M, "Cost of goods sold", "销货成本"),
    _i("average_inventory", _E, Unit.CURRENCY, _DOWN, _M, "Average inventory (at cost)",
       "平均库存"),
    _i("stockout_orders", _E, Unit.COUNT, _DOWN, _M, "Out-of-stock orders", "缺货订单数"),
    _i("shipped", _E, Unit.COUNT, _UP, _M, "Parcels shipped", "发货包裹数"),
    _i("delivered", _E, Unit.COUNT, _UP, _M, "Parcels delivered", "妥投包裹数"),
    _i("reviews", _C, Unit.COUNT, _UP, _Q, "Reviews", "评价数"),
    _i("positive_reviews", _C, Unit.COUNT, _UP, _Q, "Positive (4-5 star) reviews", "好评数"),
    _i("disputes", _C, Unit.COUNT, _DOWN, _Q, "Disputed orders", "纠纷订单数"),
    _i("disputes_closed", _C, Unit.COUNT, _UP, _Q, "Disputes closed", "已结案纠纷数"),
    _i("disputes_won", _C, Unit.COUNT, _UP, _Q, "Disputes won", "胜诉纠纷数"),
    _i("buyers", _C, Unit.COUNT, _UP, _Q, "Buyers", "买家数"),
    _i("repeat_buyers", _C, Unit.COUNT, _UP, _Q, "Repeat buyers", "复购买家数"),
    _i("ad_spend", _P, Unit.CURRENCY, _DOWN, _D, "Ad spend", "广告花费"),
    _i("returns", _C, Unit.COUNT, _DOWN, _D, "Returned orders", "退货订单数"),
    _i("tickets", _C, Unit.COUNT, _DOWN, _D, "Customer-service tickets", "客服工单数"),
    _i("tickets_resolved", _C, Unit.COUNT, _UP, _D, "Customer-service tickets resolved",
       "已解决客服工单数"),
)}
COUNT_FIELDS: Final[frozenset[str]] = frozenset(RAW_FIELDS)


class DeclaredMetric(BaseModel):
    """A metric a rule pack declares (``metrics:``) beside the registry's: snapshots are
    validated against its range and unit as against a registry indicator's, when the pack
    in force is passed to validation (``watcher.validation.validate``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    unit: Unit
    direction: Direction
    minimum: float | None
    maximum: float | None
    name_en: str | None = None
    name_zh: str | None = None

    @property
    def ceiling(self) -> float:
        return ceiling(self.unit, self.maximum)


def get(metric_id: str) -> Indicator | None:
    return INDICATORS.get(metric_id) or RAW_FIELDS.get(metric_id)
