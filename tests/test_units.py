"""One table of currency signs for ads and pages: a price reads the same in both."""

from core.copy.data_headlines import price_text
from core.copy.facts import ProductFacts
from core.units import with_currency
from pages._widgets import money


def test_money_is_written_with_its_sign_or_its_code_and_the_ad_and_the_page_agree() -> None:
    assert with_currency("20.99", "usd") == "$20.99" and with_currency("129", "SEK") == "129 SEK"
    assert with_currency("5", None) == "5"
    cad = ProductFacts("P", "Tumbler", None, None, 20.0, "CAD", "", {})
    assert price_text(cad) == "CA$20" == money(20.0, "CAD")
