"""Identity tagging (issue 3, SPEC "What a session guarantees"): every
copy of X-Authenticated-User the client sent is removed, whatever its
case, white space before the colon, folding or position; ours is the only
one, right under our Received header. A body line with the same text is
data and stays. MAIL FROM to an authenticated smarthost carries AUTH=
with the user's address; a client's AUTH= is never passed on (those are
in test_relay_tls.py, where the smarthost authenticates us).
"""

import pytest

from harness import check
from smarthost import (USER, only_message, relay_config, split_tagged, submit)

pytest_plugins = ["smarthost"]

TOP = (b"From: Alice <alice@example.com>\r\n"
       b"To: Bob <bob@example.net>\r\n")
MIDDLE = b"Subject: forged identity\r\n"
BOTTOM = (b"Date: Mon, 01 Jan 2024 10:00:00 +0000\r\n"
          b"Message-ID: <forged@example.com>\r\n")
BODY = (b"\r\n"
        b"X-Authenticated-User: mallory (body line: kept)\r\n"
        b"x-authenticated-user: mallory\r\n"
        b"bye\r\n")

FORGED = {
    "plain": b"X-Authenticated-User: mallory\r\n",
    "lower-case": b"x-authenticated-user: mallory\r\n",
    "upper-case": b"X-AUTHENTICATED-USER: mallory\r\n",
    "mixed-case": b"x-AuThEnTiCaTeD-uSeR: mallory\r\n",
    "no-space": b"X-Authenticated-User:mallory\r\n",
    "space-before-colon": b"X-Authenticated-User : mallory\r\n",
    "tab-before-colon": b"X-Authenticated-User\t: mallory\r\n",
    "spaces-before-colon": b"X-Authenticated-User    \t  : mallory\r\n",
    "folded-value": b"X-Authenticated-User:\r\n mallory\r\n",
    "folded-twice": b"X-Authenticated-User: mal\r\n\tlo\r\n  ry\r\n",
    "fold-before-colon": b"X-Authenticated-User\r\n : mallory\r\n",
    "empty-value": b"X-Authenticated-User:\r\n",
    "long-value": b"X-Authenticated-User: " + b"m" * 900 + b"\r\n",
}


def run(smarthosts, authrelay, headers):
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    check(submit(c, headers + BODY), 250, "2.0.0", what="end of data")
    c.quit()
    _m, rest = split_tagged(only_message(sh).data)
    return rest


@pytest.mark.parametrize("where", ["top", "middle", "end-of-headers"])
@pytest.mark.parametrize("variant", sorted(FORGED))
def test_forged_identity_header_is_removed(smarthosts, authrelay, variant,
                                           where):
    forged = FORGED[variant]
    if where == "top":
        headers = forged + TOP + MIDDLE + BOTTOM
    elif where == "middle":
        headers = TOP + MIDDLE + forged + BOTTOM
    else:
        headers = TOP + MIDDLE + BOTTOM + forged
    rest = run(smarthosts, authrelay, headers)
    want = TOP + MIDDLE + BOTTOM + BODY
    assert rest == want, f"forged header ({variant}, {where}) not " \
        f"removed exactly:\ngot  {rest!r}\nwant {want!r}"


def test_forged_identity_header_twice_and_more(smarthosts, authrelay):
    headers = (FORGED["plain"] + TOP + FORGED["space-before-colon"] +
               MIDDLE + FORGED["folded-value"] + BOTTOM +
               FORGED["lower-case"])
    rest = run(smarthosts, authrelay, headers)
    want = TOP + MIDDLE + BOTTOM + BODY
    assert rest == want, f"got {rest!r}\nwant {want!r}"


def test_only_the_header_is_removed_not_similar_ones(smarthosts, authrelay):
    similar = (b"X-Authenticated-User-Extra: keep\r\n"
               b"X-Authenticated-Users: keep\r\n"
               b"X-Authenticated: keep\r\n"
               b"X-Authenticated-Use: keep\r\n"
               b"Comments: X-Authenticated-User: keep\r\n"
               b"X-Authenticated-User-\r\n")   # not a field at all: kept
    headers = TOP + similar + BOTTOM
    rest = run(smarthosts, authrelay, headers)
    assert rest == headers + BODY, f"got {rest!r}"


def test_forged_header_in_a_message_without_body(smarthosts, authrelay):
    """The end of data inside the header section (no empty line)."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    check(submit(c, TOP + FORGED["plain"] + BOTTOM), 250, "2.0.0",
          what="end of data")
    c.quit()
    _m, rest = split_tagged(only_message(sh).data)
    assert rest == TOP + BOTTOM, f"got {rest!r}"


def test_identity_header_removal_past_the_held_header_size(smarthosts,
                                                           authrelay):
    """A header section over the held size (256 KiB) cannot push a forged
    field past the filter."""
    sh = smarthosts()
    d = authrelay(config=relay_config(sh))
    c = d.authed(USER)
    filler = b"".join(b"X-Filler-%06d: %s\r\n" % (i, b"f" * 60)
                      for i in range(5000))     # ~390 KB
    headers = TOP + filler + FORGED["space-before-colon"] + BOTTOM
    check(submit(c, headers + BODY), 250, "2.0.0", what="end of data")
    c.quit()
    _m, rest = split_tagged(only_message(sh).data)
    assert rest == TOP + filler + BOTTOM + BODY, "forged field kept or " \
        "message changed"
