#!/usr/bin/python3
"""`make bench`: mxguard's benchmarks on a private Redis and DNS, one report.

USAGE
    /usr/bin/python3 tests/bench/run.py [--build DIR] [--messages N] [--seed S]
        [--iterations N] [--decisions N] [--connections M] [--requests N]
        [--only engine,content,greylist,policy,ratelimit,compare] [--regenerate] [--keep]
        [--compare-messages N] [--sessions N] [--repeats N] [--warmup N]
        [--configs postfix,mxguard,rspamd,classic] [--no-install]
        [--results FILE]

    Figures, not a test: nothing here passes or fails on speed, and none of
    it is part of `make test`.  Exit status 1 only when a benchmark could not
    run (a binary missing, a daemon that would not start, a benchmark that
    exited non-zero, a configuration of the comparison that failed).

WHAT IT DOES
    1. The corpus (tests/bench/.cache/corpus-N-sS/, git-ignored; made once
       per size and seed and reused while CORPUS_VERSION matches):
       N messages (default 500) of 2-50 KB, plain text, HTML with a text
       alternative, or with an attachment; DKIM-signed by dkimpy
       (tests/harness/dkimkeys.py) with RSA-2048 and ed25519 keys made by
       openssl; sender domains whose SPF, DKIM and DMARC records make a mix of
       pass and fail (direct mail, an ESP signing for its customers, mail
       forwarded through a list that breaks signatures, spoofs, bounces with
       the null sender, spam with and without authentication).  Each file
       starts with X-Bench-Client / -Helo / -Mail-From / -Rcpt / -Kind
       headers: the envelope bench_engine uses (and removes).  The DNS
       records are kept beside the messages (meta.json).
    2. A private unbound (tests/harness/dnsserver.py, TTL 3600 s, so nothing
       expires during the run) serving those records and two DNS lists
       (compare.dnsbl_records), and a private redis-server
       (tests/harness/mta.py), on free loopback ports.
    3. Two configs in a temporary directory: engine.conf with every check on,
       as the milter runs in the comparison (compare.mxguard_checks_config:
       SPF, DKIM, DMARC with enforcement, rules/*.rules, two DNS lists,
       greylisting mode triplet with delay 1s, which bench_engine's warm-up
       waits out), and bench.conf (SPF with Received-SPF, greylisting) for
       the greylisting and policy runs.  log_level = notice in both: the one
       info line per request that mxguard-policy writes is not part of the
       figures.
    4. build/bench/bench_engine on engine.conf, 1 thread then 2 threads
       (with the time per check); build/bench/bench_greylist on bench.conf
       (greylisting alone), 1 thread then 4; build/mxguard-policy on
       bench.conf (SPF and greylisting, as it runs at RCPT time) driven by
       build/bench/bench_policy.
    5. The report: machine, commit, corpus, each benchmark's own output, and
       a summary table.  Every daemon is stopped by its PID.
    6. The filter comparison (compare.py, stage "compare"): mxguard-milter,
       rspamd and OpenDKIM + OpenDMARC + postgrey under one private Postfix,
       on a corpus of --compare-messages (2000), each --repeats (3) times;
       writes tests/bench/results.md with the engine's figures (step 4)
       appended.  See compare.py and README.md.

    --build DIR       binaries from DIR (default build)
    --messages N      corpus size (default 500)
    --seed S          corpus seed (default 1)
    --iterations N    timed passes over the corpus per engine run (default 20)
    --decisions N     greylisting decisions per bench_greylist run (default
                      50000)
    --connections M   bench_policy connections (default 8)
    --requests N      requests per connection (default 5000)
    --only LIST       run only some of engine, content, greylist, policy,
                      ratelimit, compare
    --compare-messages N   the comparison's corpus and messages per run
                      (default 2000); --sessions (20), --repeats (3),
                      --warmup (100), --configs, --no-install, --results:
                      see compare.py
    --regenerate      make the corpus again even if the cache matches
    --keep            keep the work directory (configs, daemon logs)
"""

from __future__ import annotations

import argparse
import base64
import datetime
import json
import os
import platform
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from email.utils import format_datetime

sys.dont_write_bytecode = True  # leave no __pycache__ in the tree

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "harness"))

from dnsserver import DnsServer, DnsServerError  # noqa: E402
from mta import HarnessError, Redis, free_port, port_accepts, tail, wait_for  # noqa: E402

sys.path.insert(0, HERE)
import compare  # noqa: E402

CACHE = os.path.join(HERE, ".cache")


def corpus_dir(messages, seed):
    """One cached corpus per size and seed: the engine benchmarks and the
    filter comparison use different sizes and must not remake each other's."""
    return os.path.join(CACHE, "corpus-%d-s%d" % (messages, seed))

CORPUS_VERSION = 2
LOCAL_DOMAIN = "bench.example"
AUTHSERV_ID = "mx.bench.example"
GREYLIST_DELAY = 1

# ---------------------------------------------------------------- domains
#
# Each author domain i sends from 192.0.2.(16 i)/28 (mx1 is .16i+1, the
# "out" host .16i+2) and publishes SPF in one of several shapes, so that a
# check costs one to four lookups.  dkim: the keys it signs with ("rsa",
# "ed", both, or none).  dmarc: its record, or None.

AUTHORS = [
    # name, SPF shape, DMARC record, DKIM keys
    ("northwind.example", "ip4+esp", "v=DMARC1; p=reject; rua=mailto:dmarc@northwind.example", ("rsa",)),
    ("contoso.example", "mx+a", "v=DMARC1; p=quarantine; adkim=s", ("rsa",)),
    ("fabrikam.example", "soft", "v=DMARC1; p=none", ("ed", "rsa")),
    ("tailspin.example", "ip4", "v=DMARC1; p=reject; pct=50", ("rsa",)),
    ("wingtip.example", "neutral", None, ("rsa",)),
    ("litware.example", None, "v=DMARC1; p=quarantine", ("rsa",)),
    ("proseware.example", "include2", "v=DMARC1; p=reject; sp=quarantine", ("rsa",)),
    ("woodgrove.example", "ip4", "v=DMARC1; p=reject; adkim=s; aspf=s", ("rsa", "ed")),
    ("fourthcoffee.example", "ip4+esp", "v=DMARC1; p=none", ()),
    ("lucerne.example", None, None, ()),
    ("alpine.example", "ip4", "v=DMARC1; p=quarantine; pct=25", ("rsa",)),
    ("blueyonder.example", "redirect", "v=DMARC1; p=reject", ("ed",)),
]
ESP = "esp.example"                 # signs as itself and for customers
SPAM_DOMAINS = [
    # name, SPF record, DMARC, signs
    ("cheap-deals.example", "v=spf1 ip4:203.0.113.0/24 -all", "v=DMARC1; p=none", True),
    ("pharma-rx.example", None, None, False),
    ("lottery-win.example", "v=spf1 +all", None, False),
]
FORWARDER_IP = "203.0.113.50"
SPOOF_IPS = ["203.0.113.66", "198.18.7.9", "100.70.1.2"]
ESP_IPS = ["198.51.100.%d" % n for n in (10, 11, 12, 40)]


def author_index(domain):
    return [a[0] for a in AUTHORS].index(domain)


def author_ips(domain):
    """Client IPs SPF passes for a direct message from this domain."""
    i = author_index(domain)
    shape = AUTHORS[i][1]
    if shape == "mx+a":
        return ["192.0.2.%d" % (16 * i + 1), "192.0.2.%d" % (16 * i + 2)]
    if shape is None:
        return ["192.0.2.%d" % (16 * i + 5)]
    return ["192.0.2.%d" % (16 * i + n) for n in (3, 4, 7, 9)]


def dns_records(keys):
    """Every record the corpus needs; keys: name -> KeyPair (dkimkeys)."""
    recs = [("mx.%s" % LOCAL_DOMAIN, "A", "192.0.2.250")]
    for i, (d, shape, dmarc, dkim_keys) in enumerate(AUTHORS):
        net = "192.0.2.%d/28" % (16 * i)
        mx_ip, out_ip = "192.0.2.%d" % (16 * i + 1), "192.0.2.%d" % (16 * i + 2)
        recs += [(d, "MX", (10, "mx1.%s" % d)), ("mx1.%s" % d, "A", mx_ip),
                 ("out.%s" % d, "A", out_ip), (d, "A", out_ip),
                 # the HELO identity of bounces (null sender)
                 ("mx1.%s" % d, "TXT", "v=spf1 a -all")]
        spf = {
            "ip4": "v=spf1 ip4:%s -all" % net,
            "ip4+esp": "v=spf1 ip4:%s include:_spf.%s -all" % (net, ESP),
            "mx+a": "v=spf1 mx a:out.%s -all" % d,
            "soft": "v=spf1 ip4:%s ~all" % net,
            "neutral": "v=spf1 ip4:%s ?all" % net,
            "include2": "v=spf1 include:_spf1.%s include:_spf2.%s -all" % (d, d),
            "redirect": "v=spf1 redirect=_spf.%s" % d,
            None: None,
        }[shape]
        if spf:
            recs.append((d, "TXT", spf))
        if shape == "include2":
            recs += [("_spf1.%s" % d, "TXT", "v=spf1 ip4:198.18.0.0/24 -all"),
                     ("_spf2.%s" % d, "TXT", "v=spf1 ip4:%s -all" % net)]
        if shape == "redirect":
            recs.append(("_spf.%s" % d, "TXT", "v=spf1 ip4:%s -all" % net))
        if dmarc:
            recs.append(("_dmarc.%s" % d, "TXT", dmarc))
        # A text record beside SPF, as real domains have (verification
        # tokens): SPF must pick its own out of the answer.
        recs.append((d, "TXT", "site-verification=%s" % d.split(".")[0]))
        for k in dkim_keys:
            recs.append(keys["%s:%s" % (k, d)].record())
    recs += [(ESP, "TXT", "v=spf1 ip4:198.51.100.0/24 -all"),
             ("_spf.%s" % ESP, "TXT", "v=spf1 ip4:198.51.100.0/24 -all"),
             ("_dmarc.%s" % ESP, "TXT", "v=DMARC1; p=none"),
             keys["esp"].record()]
    for d, spf, dmarc, signs in SPAM_DOMAINS:
        if spf:
            recs.append((d, "TXT", spf))
        if dmarc:
            recs.append(("_dmarc.%s" % d, "TXT", dmarc))
        if signs:
            recs.append(keys["spam:%s" % d].record())
    return recs


# ---------------------------------------------------------------- text

WORDS = ("the of and to in is that for it as was with be by on not he this are or his from at "
         "which but have an they you were her she all their there been one so has more when "
         "will would who if no out some into time only new other could about than then them "
         "these two may first any like now my such make over our even most after also made "
         "many before must through back years where much your way well down should because "
         "each just those people how too little state good very world still own see men work "
         "long get here between both life being under never day same another know while last "
         "might us great old year off come since against go came right used take three "
         "report budget meeting schedule project review quarter figures attached invoice "
         "delivery shipment account team update release customer order support contract "
         "draft agenda minutes proposal forecast revenue partner training office deadline").split()

SPAM_LINES = [
    "ACT NOW and order today: this LIMITED TIME OFFER ends at midnight!",
    "You have been selected to claim your prize of $1,000,000.00 in our lottery program.",
    "Earn up to $5,000 per week from home, 100% guaranteed, no obligation, risk-free.",
    "Buy viagra and cialis online without prescription, prescription drugs online cheap.",
    "Dear beneficiary, the transfer of the sum of $12,500,000.00 is strictly confidential.",
    "Your account has been suspended: verify your account within 24 hours to avoid closure.",
    "This is not spam: you are receiving this in compliance with bill s. 1618 title III.",
    "To be removed from this mailing list reply with \"remove\" in the subject.",
    "Click here now to receive your FREE GIFT CARD worth $500, $1,200 or even $2,500!",
    "MAKE MONEY FAST WITH THIS AMAZING SECRET SYSTEM THAT BANKS DO NOT WANT YOU TO KNOW",
]

SUBJECTS = ["Quarterly report", "Meeting notes for Tuesday", "Invoice {n}", "Re: project update",
            "Your order {n} has shipped", "Agenda: budget review", "Draft contract v{n}",
            "Weekly newsletter #{n}", "Training schedule", "Release notes {n}.{m}",
            "Delivery status notification", "Welcome to the team", "Forecast and figures"]
SPAM_SUBJECTS = ["MAKE MONEY FAST!!!", "You are a WINNER - claim your prize", "Cheap meds, 80% off",
                 "Re: your account", "URGENT: verify your account now", "Free gift inside!!!",
                 "[ADV] Lowest mortgage rates", "Business proposal (strictly confidential)"]


def words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def paragraphs(rng, size, spam=False, spam_rate=0.0):
    """Plain text of about size bytes, in wrapped paragraphs."""
    out, total = [], 0
    while total < size:
        para = words(rng, rng.randint(25, 90)).capitalize() + "."
        if spam and rng.random() < 0.5 or rng.random() < spam_rate:
            para += " " + rng.choice(SPAM_LINES)
        text = textwrap.fill(para, 72)
        out.append(text)
        total += len(text) + 2
    return "\n\n".join(out) + "\n"


def html_of(rng, text, domain, spam):
    links = []
    for _ in range(rng.randint(1, 6)):
        if spam:
            links.append(rng.choice(["http://bit.ly/%x" % rng.getrandbits(32),
                                     "http://198.18.%d.%d/claim" % (rng.randint(0, 255), rng.randint(1, 254)),
                                     "https://win-%x.top/offer" % rng.getrandbits(24),
                                     "https://www.%s/unsubscribe?id=%d" % (domain, rng.getrandbits(20))]))
        else:
            links.append("https://www.%s/%s/%d" % (domain, rng.choice(WORDS), rng.getrandbits(16)))
    parts = ["<!DOCTYPE html>", "<html><head><meta charset=\"utf-8\"><style>p{margin:0 0 1em}</style>"
             "</head><body>"]
    for i, para in enumerate(text.split("\n\n")):
        para = para.replace("&", "&amp;").replace("<", "&lt;").replace("\n", " ")
        parts.append("<p>%s</p>" % para)
        if i < len(links):
            parts.append('<p><a href="%s">%s</a></p>' % (links[i], words(rng, 3)))
    if spam:
        parts.append('<div style="display:none">%s</div>' % words(rng, 60))
        parts.append('<img src="https://track.%s/o.gif?u=%d" width="1" height="1">'
                     % (domain, rng.getrandbits(24)))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def b64_lines(data):
    s = base64.b64encode(data).decode()
    return "\n".join(s[i:i + 76] for i in range(0, len(s), 76)) + "\n"


def build_body(rng, size, form, domain, spam, spam_rate):
    """(content headers, body) of about size bytes in the given form."""
    if form == "plain":
        return ["Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"], \
            paragraphs(rng, size, spam, spam_rate)
    boundary = "=_bench_%x" % rng.getrandbits(48)
    if form == "html":
        text = paragraphs(rng, size * 0.4, spam, spam_rate)
        html = html_of(rng, text, domain, spam)
        body = ("This is a multi-part message in MIME format.\n\n"
                "--{b}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
                "{t}\n--{b}\nContent-Type: text/html; charset=utf-8\n"
                "Content-Transfer-Encoding: 8bit\n\n{h}\n--{b}--\n").format(b=boundary, t=text, h=html)
        return ["Content-Type: multipart/alternative; boundary=\"%s\"" % boundary], body
    # attachment: a short text and a file of the rest
    text = paragraphs(rng, min(size * 0.2, 3000), spam, spam_rate)
    raw = rng.randbytes(max(512, int(size * 0.7 * 3 / 4)))
    if spam and rng.random() < 0.4:
        name, ctype = rng.choice([("invoice_%d.pdf.exe", "application/octet-stream"),
                                  ("document_%d.zip", "application/zip"),
                                  ("payment_%d.docm", "application/vnd.ms-word.document.macroEnabled.12")])
    else:
        name, ctype = rng.choice([("report_%d.pdf", "application/pdf"), ("figures_%d.xlsx",
                                  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
                                  ("photo_%d.jpg", "image/jpeg")])
    name = name % rng.randint(100, 9999)
    body = ("This is a multi-part message in MIME format.\n\n"
            "--{b}\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
            "{t}\n--{b}\nContent-Type: {c}; name=\"{n}\"\nContent-Transfer-Encoding: base64\n"
            "Content-Disposition: attachment; filename=\"{n}\"\n\n{a}--{b}--\n").format(
                b=boundary, t=text, c=ctype, n=name, a=b64_lines(raw))
    return ["Content-Type: multipart/mixed; boundary=\"%s\"" % boundary], body


# ---------------------------------------------------------------- messages

KINDS = [  # kind, weight
    ("direct", 30), ("esp", 14), ("esp-unaligned", 5), ("forwarded", 8), ("spoof", 10),
    ("unsigned", 7), ("bounce", 5), ("spam", 21),
]


def make_one(rng, keys, dkimkeys, now):
    """One corpus message: (file bytes, kind)."""
    kind = rng.choices([k for k, _ in KINDS], [w for _, w in KINDS])[0]
    size = int(1200 * (40 ** rng.random()))            # body 1.2-48 KB: 2-50 KB in all
    form = rng.choices(["plain", "html", "attachment"], [50, 30, 20])[0]
    rcpt = "user%d@%s" % (rng.randrange(500), LOCAL_DOMAIN)
    signed_domains = [d for d, _, _, k in AUTHORS if k]
    spam = False
    sign = []                                          # KeyPairs, innermost first
    extra = []
    mangle = False
    if kind == "direct":
        domain = rng.choice(signed_domains)
        client = rng.choice(author_ips(domain))
        helo = "out.%s" % domain
        mail_from = "%s@%s" % (rng.choice(["alice", "bob", "carol", "news", "billing"]), domain)
        sign = [keys["%s:%s" % (k, domain)] for k in AUTHORS[author_index(domain)][3]]
    elif kind in ("esp", "esp-unaligned"):
        domain = rng.choice([d for d, _, _, _ in AUTHORS])
        client = rng.choice(ESP_IPS)
        helo = "o%d.mta.%s" % (rng.randrange(20), ESP)
        mail_from = "bounces+%x@%s" % (rng.getrandbits(40), ESP)
        own = [keys["%s:%s" % (k, domain)] for k in AUTHORS[author_index(domain)][3]][:1]
        sign = (own if kind == "esp" else []) + [keys["esp"]]
        extra = ["List-Unsubscribe: <https://%s/u/%x>" % (ESP, rng.getrandbits(40)),
                 "Feedback-ID: %d:%s:esp" % (rng.randrange(9999), domain.split(".")[0])]
    elif kind == "forwarded":
        domain = rng.choice(signed_domains)
        client = FORWARDER_IP
        helo = "lists.forwarder.example"
        mail_from = "%s@%s" % (rng.choice(["alice", "dave"]), domain)
        sign = [keys["%s:%s" % (k, domain)] for k in AUTHORS[author_index(domain)][3]][:1]
        mangle = True
    elif kind == "spoof":
        domain = rng.choice(["northwind.example", "woodgrove.example", "tailspin.example",
                             "contoso.example", "proseware.example", "blueyonder.example",
                             "litware.example", "alpine.example"])
        client = rng.choice(SPOOF_IPS)
        helo = "smtp%d.example.net" % rng.randrange(100)
        mail_from = "security@%s" % domain
        if rng.random() < 0.4:                         # a selector with no key: permerror
            sign = [keys["rsa:%s" % AUTHORS[0][0]].rebind("gone", domain)]
    elif kind == "unsigned":
        domain = rng.choice(["fourthcoffee.example", "lucerne.example"])
        client = rng.choice(author_ips(domain))
        helo = "out.%s" % domain
        mail_from = "office@%s" % domain
    elif kind == "bounce":
        domain = rng.choice([d for d, _, _, _ in AUTHORS])
        client = "192.0.2.%d" % (16 * author_index(domain) + 1)
        helo = "mx1.%s" % domain
        mail_from = "<>"
    else:                                              # spam
        spam = True
        domain, spf, _, signs = rng.choice(SPAM_DOMAINS)
        client = "203.0.113.%d" % rng.randint(100, 250)
        helo = rng.choice(["localhost", "User", "mail.%s" % domain, "[%s]" % client])
        mail_from = "%s%d@%s" % (rng.choice(["promo", "winner", "info", "noreply"]), rng.randrange(99999), domain)
        if signs:
            sign = [keys["spam:%s" % domain]]
        if form == "plain" and rng.random() < 0.6:
            form = "html"

    if kind == "bounce":
        from_hdr = "Mail Delivery System <MAILER-DAEMON@mx1.%s>" % domain
        subject = "Undelivered Mail Returned to Sender"
    else:
        local = mail_from.split("@")[0] if kind not in ("esp", "esp-unaligned") else "news"
        from_hdr = "%s <%s@%s>" % (local.capitalize(), local, domain)
        subject = (rng.choice(SPAM_SUBJECTS) if spam else rng.choice(SUBJECTS)).format(
            n=rng.randrange(10000), m=rng.randrange(10))
    date = format_datetime(datetime.datetime.fromtimestamp(now - rng.randrange(3600),
                                                           datetime.timezone.utc))
    msgid = "<%x.%x@%s>" % (rng.getrandbits(48), rng.getrandbits(32),
                            "mx1." + domain if kind == "bounce" else domain)
    content_headers, body = build_body(rng, size, form, domain, spam, 0.03)
    received = [
        "Received: from %s (%s [%s])\n\tby mx.%s (Postfix) with ESMTPS id %X\n\tfor <%s>; %s"
        % (helo, helo, client, LOCAL_DOMAIN, rng.getrandbits(40), rcpt, date),
    ]
    if not spam and kind != "bounce":
        received.append("Received: from [10.%d.%d.%d] (workstation.%s [10.0.0.1])\n\tby out.%s "
                        "(Postfix) with ESMTPSA id %X; %s"
                        % (rng.randrange(255), rng.randrange(255), rng.randrange(255), domain, domain,
                           rng.getrandbits(40), date))
    headers = received + [
        "From: %s" % from_hdr,
        "To: <%s>" % rcpt if not spam else "To: undisclosed-recipients:;",
        "Subject: %s" % subject,
        "Date: %s" % date,
        "Message-ID: %s" % msgid,
        "MIME-Version: 1.0",
    ] + content_headers + extra
    if spam and rng.random() < 0.5:
        headers.append("X-Mailer: %s" % rng.choice(["Bulk Mailer Pro 5.1", "Atomic Mail Sender",
                                                    "SendBlaster 4"]))
    if spam and rng.random() < 0.3:
        headers.append("Reply-To: <claims%d@gmail.com>" % rng.randrange(9999))
    message = dkimkeys.crlf("\n".join(headers) + "\n\n" + body)
    for key in sign:
        canon = rng.choice(["relaxed/relaxed", "relaxed/simple", "simple/simple"])
        if key.kind == "ed25519" and canon.startswith("simple"):
            canon = "relaxed/relaxed"
        message = dkimkeys.sign_dkimpy(message, key, canon=canon)
    if mangle:                                         # a list adds a tag and a footer
        message = message.replace(b"Subject: ", b"Subject: [team-list] ", 1)
        message += b"-- \r\nteam-list mailing list\r\nhttps://lists.forwarder.example/team\r\n"
    envelope = ("X-Bench-Client: %s\r\nX-Bench-Helo: %s\r\nX-Bench-Mail-From: %s\r\n"
                "X-Bench-Rcpt: %s\r\nX-Bench-Kind: %s %s\r\n"
                % (client, helo, mail_from, rcpt, kind, form)).encode()
    return envelope + message, kind, form


def corpus_params(messages, seed):
    return {"version": CORPUS_VERSION, "messages": messages, "seed": seed}


def load_corpus(messages, seed):
    """The cached corpus's meta, or None when missing or made otherwise."""
    cdir = corpus_dir(messages, seed)
    try:
        with open(os.path.join(cdir, "meta.json")) as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return None
    if meta.get("params") != corpus_params(messages, seed):
        return None
    msgdir = os.path.join(cdir, "messages")
    if not os.path.isdir(msgdir) or len(os.listdir(msgdir)) != messages:
        return None
    return meta


def ensure_corpus(messages, seed, regenerate=False):
    """(meta, message directory, a note on where it came from): the cached
    corpus of that size and seed, made first when missing or stale."""
    meta = None if regenerate else load_corpus(messages, seed)
    if meta is None:
        print("== corpus: generating %d messages (seed %d) into %s"
              % (messages, seed, os.path.relpath(corpus_dir(messages, seed), ROOT)), flush=True)
        meta = generate_corpus(messages, seed)
        note = "generated in %.1f s" % meta["seconds"]
    else:
        note = "cached (made %s)" % time.strftime("%Y-%m-%d %H:%M", time.localtime(meta["made"]))
    return meta, os.path.join(corpus_dir(messages, seed), "messages"), note


def generate_corpus(messages, seed):
    import dkimkeys                                    # python3-dkim: only needed here

    t0 = time.monotonic()
    cdir = corpus_dir(messages, seed)
    shutil.rmtree(cdir, ignore_errors=True)
    # the single corpus directory of earlier versions
    shutil.rmtree(os.path.join(CACHE, "corpus"), ignore_errors=True)
    keydir = os.path.join(cdir, "keys")
    msgdir = os.path.join(cdir, "messages")
    os.makedirs(keydir)
    os.makedirs(msgdir)
    rsa = dkimkeys.KeyPair.rsa("s2026", "key.invalid", 2048, keydir)
    ed = dkimkeys.KeyPair.ed25519("ed2026", "key.invalid", keydir)
    keys = {"esp": dkimkeys.KeyPair.rsa("esp1", ESP, 2048, keydir)}
    for d, _, _, kinds in AUTHORS:
        for k in kinds:
            keys["%s:%s" % (k, d)] = (rsa if k == "rsa" else ed).rebind(
                "s2026" if k == "rsa" else "ed2026", d)
    for d, _, _, signs in SPAM_DOMAINS:
        if signs:
            keys["spam:%s" % d] = rsa.rebind("mkt", d)
    rng = random.Random(seed)
    now = int(time.time())
    kinds, forms, sizes = {}, {}, []
    for n in range(messages):
        data, kind, form = make_one(rng, keys, dkimkeys, now)
        with open(os.path.join(msgdir, "m%04d-%s.eml" % (n, kind)), "wb") as f:
            f.write(data)
        kinds[kind] = kinds.get(kind, 0) + 1
        forms[form] = forms.get(form, 0) + 1
        sizes.append(len(data))
    records = dns_records(keys)
    meta = {"params": corpus_params(messages, seed), "made": now, "seconds": round(time.monotonic() - t0, 1),
            "kinds": kinds, "forms": forms, "sizes": sizes,
            "domains": [d for d, _, _, _ in AUTHORS] + [ESP] + [d for d, _, _, _ in SPAM_DOMAINS],
            "records": [list(r) for r in records]}
    with open(os.path.join(cdir, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    return meta


# ---------------------------------------------------------------- running

def write_configs(workdir, dns, redis, policy_port):
    base = """\
# mxguard bench: every check on (tests/bench/run.py)
[milter]
authserv_id = {authserv}
log_level = notice
# the daemons refuse root without it; the benchmark runs as root
user = root
[dns]
nameserver = {ns}
timeout = 2s
on_error = tempfail
[spf]
enabled = yes
# mxguard-policy answers PREPEND Received-SPF: shows that SPF ran
received_spf = yes
[dkim]
enabled = yes
[dmarc]
enabled = yes
discovery = treewalk
enforce = yes
[rules]
enabled = yes
files = {root}/rules/*.rules
[redis]
server = 127.0.0.1:{redis}
[greylist]
enabled = yes
mode = triplet
delay = {delay}s
[policy]
listen = inet:{policy}@127.0.0.1
max_connections = 256
""".format(authserv=AUTHSERV_ID, ns=dns.address, root=ROOT, redis=redis.port,
           delay=GREYLIST_DELAY, policy=policy_port)
    bench = os.path.join(workdir, "bench.conf")
    engine = os.path.join(workdir, "engine.conf")
    with open(bench, "w") as f:
        f.write(base)
    with open(engine, "w") as f:
        # every check, as the milter runs in the comparison (compare.py)
        f.write("# mxguard bench: every check on (tests/bench/compare.py)\n"
                + compare.mxguard_checks_config(dns, redis.port)
                + "[milter]\nlog_level = notice\n[dns]\ntimeout = 2s\n")
    return bench, engine


class BenchFailed(Exception):
    pass


def run_bench(label, argv, timeout=600):
    """Runs one benchmark binary; returns its stdout (stderr shown)."""
    print("== %s: %s" % (label, " ".join(os.path.relpath(a, ROOT) if a.startswith(ROOT) else a
                                         for a in argv)), flush=True)
    t0 = time.monotonic()
    p = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       text=True, errors="replace", timeout=timeout)
    out = p.stdout
    sys.stdout.write(out)
    if p.stderr.strip():
        sys.stdout.write("".join("   stderr: %s\n" % l for l in p.stderr.rstrip().splitlines()[-15:]))
    print("   (%.1f s)" % (time.monotonic() - t0), flush=True)
    if p.returncode != 0:
        raise BenchFailed("%s exited %d" % (label, p.returncode))
    return out


def figure(text, key, rx):
    m = re.search(r"^%s\s+%s" % (re.escape(key), rx), text, re.M)
    return m.group(1) if m else "?"


class Policy:
    """mxguard-policy -f -c CONF, stopped by its PID."""

    def __init__(self, binary, conf, port, workdir, name="policy"):
        self.binary, self.conf, self.port = binary, conf, port
        self.log_path = os.path.join(workdir, "%s.log" % name)
        self.proc = None

    def start(self):
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen([self.binary, "-f", "-c", self.conf], cwd=ROOT,
                                     stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        if not wait_for(lambda: self.proc.poll() is not None or port_accepts(self.port), 15):
            self.stop()
            raise HarnessError("mxguard-policy did not listen:\n" + tail(self.log_path))
        if self.proc.poll() is not None:
            raise HarnessError("mxguard-policy exited %s:\n%s" % (self.proc.returncode,
                                                                  tail(self.log_path)))

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self.proc is not None:
            self.log.close()
        rc = self.proc.returncode if self.proc else None
        self.proc = None
        return rc


def machine():
    model = "?"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"^model name\s*:\s*(.*)$", f.read(), re.M)
            model = m.group(1) if m else model
    except OSError:
        pass
    return "%s; %d CPUs (%d usable); Linux %s" % (model, os.cpu_count() or 0,
                                                   len(os.sched_getaffinity(0)), platform.release())


def commit():
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, text=True,
                              capture_output=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "lib", "cli", "milter",
                                "policy"],
                               cwd=ROOT, text=True, capture_output=True).stdout.split("\n")
        dirty = [l[3:] for l in dirty if l.strip()]
        return head + (" + uncommitted: %s" % " ".join(dirty) if dirty else "")
    except OSError:
        return "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--build", default="build")
    ap.add_argument("--messages", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--decisions", type=int, default=50000)
    ap.add_argument("--connections", type=int, default=8)
    ap.add_argument("--requests", type=int, default=5000)
    ap.add_argument("--only", default="engine,content,greylist,policy,ratelimit,compare")
    ap.add_argument("--regenerate", action="store_true")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--compare-messages", type=int, default=2000)
    compare.add_arguments(ap)
    args = ap.parse_args()
    compare.exit_on_signals()
    only = set(args.only.split(","))
    build = os.path.join(ROOT, args.build)
    needed = {"engine": ("bench/bench_engine",), "content": ("bench/bench_engine",),
              "greylist": ("bench/bench_greylist",),
              "policy": ("bench/bench_policy", "mxguard-policy"),
              "ratelimit": ("bench/bench_ratelimit", "mxguard-policy"),
              "compare": ("bench/smtp_load", "mxguard-milter")}
    bins = {os.path.basename(n): os.path.join(build, n)
            for stage in only for n in needed.get(stage, ())}
    missing = [b for b in bins.values() if not os.access(b, os.X_OK)]
    if missing:
        print("run.py: missing %s (make bench builds them)" % ", ".join(missing), file=sys.stderr)
        return 1
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    failures = []
    outputs = {}
    if only & {"engine", "content", "greylist", "policy", "ratelimit"}:
        outputs = run_benches(args, only, bins, failures)
    if "compare" in only:
        cargs = argparse.Namespace(**vars(args))
        cargs.messages = args.compare_messages
        meta, msgdir, note = ensure_corpus(args.compare_messages, args.seed, args.regenerate)
        print("== corpus for the comparison: %d messages, %s" % (args.compare_messages, note),
              flush=True)
        failures += compare.run_comparison(cargs, build, meta, msgdir,
                                           appendix=engine_section(args, outputs))
    if failures:
        print("\nrun.py: %d problem(s):\n%s" % (len(failures), "\n".join("  " + f for f in failures)))
    print("run.py: %.0f s in all" % (time.monotonic() - started))
    return 1 if failures else 0


def run_benches(args, only, bins, failures):
    """The engine, greylisting and policy benchmarks on their own corpus,
    DNS server and Redis; prints their report."""
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    meta, msgdir, corpus_note = ensure_corpus(args.messages, args.seed, args.regenerate)
    print("== corpus: %s" % corpus_note, flush=True)

    workdir = tempfile.mkdtemp(prefix="mxguard-bench-")
    outputs = {}
    dns = DnsServer(os.path.join(workdir, "dns"), ttl=3600)
    redis = Redis(workdir)
    policy = None
    try:
        dns.set_records([tuple(r) for r in meta["records"]] + compare.dnsbl_records())
        dns.start()
        redis.start()
        policy_port = free_port()
        bench_conf, engine_conf = write_configs(workdir, dns, redis, policy_port)
        print("== dns 127.0.0.1:%d (pid %d), redis 127.0.0.1:%d (pid %d), work %s"
              % (dns.port, dns.pid, redis.port, redis.pid, workdir), flush=True)

        steps = []
        if "engine" in only:
            for t in (1, 2):
                steps.append(("engine-%dt" % t, [bins["bench_engine"], "-c", engine_conf,
                                                 "-n", str(args.iterations), "-t", str(t), msgdir]))
        if "content" in only:
            # Content scoring alone (no SPF, DKIM, DMARC, DNS lists or
            # greylisting): our default rules, then SpamAssassin's stock
            # rules as Debian installs them, loaded beside ours.
            for label, files in (("content-default", "%s/rules/*.rules" % ROOT),
                                 ("content-sa", "/usr/share/spamassassin/*.cf %s/rules/*.rules"
                                  % ROOT)):
                conf = os.path.join(workdir, label + ".conf")
                with open(conf, "w") as f:
                    f.write("# mxguard bench: content rules only (tests/bench/run.py)\n"
                            "[milter]\nlog_level = notice\n[spf]\nenabled = no\n"
                            "[dkim]\nenabled = no\n[dmarc]\nenabled = no\n"
                            "[dnsbl]\nenabled = no\n[greylist]\nenabled = no\n"
                            "[ratelimit]\nenabled = no\n[rules]\nfiles = %s\n" % files)
                steps.append((label, [bins["bench_engine"], "-c", conf, "-n",
                                      str(max(1, args.iterations // 4)), "-t", "1", msgdir]))
        if "greylist" in only:
            for t in (1, 4):
                steps.append(("greylist-%dt" % t, [bins["bench_greylist"], "-c", bench_conf,
                                                   "-n", str(args.decisions), "-t", str(t),
                                                   "-p", "redis=%d" % redis.pid]))
        for label, argv in steps:
            try:
                outputs[label] = run_bench(label, argv)
            except (BenchFailed, subprocess.TimeoutExpired) as e:
                failures.append(str(e))
        if "policy" in only:
            policy = Policy(bins["mxguard-policy"], bench_conf, policy_port, workdir)
            try:
                policy.start()
                outputs["policy"] = run_bench("policy", [
                    bins["bench_policy"], "-c", bench_conf, "-m", str(args.connections),
                    "-n", str(args.requests), "-d", ",".join(meta["domains"]),
                    "-p", "mxguard-policy=%d" % policy.pid, "-p", "redis=%d" % redis.pid])
            except (BenchFailed, HarnessError, subprocess.TimeoutExpired) as e:
                failures.append(str(e))
            rc = policy.stop()
            if rc not in (0, None):
                failures.append("mxguard-policy exited %s after SIGTERM:\n%s"
                                % (rc, tail(policy.log_path)))
        if "ratelimit" in only:
            run_ratelimit(args, bins, workdir, dns, redis, outputs, failures)
    except (DnsServerError, HarnessError) as e:
        failures.append(str(e))
    finally:
        if policy is not None:
            policy.stop()
        redis.stop()
        dns.stop()

    report(args, meta, corpus_note, outputs, time.monotonic() - started,
           (load_before, os.getloadavg()[0]))
    if args.keep or failures:
        print("work directory kept: %s" % workdir)
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return outputs


def run_ratelimit(args, bins, workdir, dns, redis, outputs, failures):
    """mxguard-policy with only the ten rate limits of ratelimit.conf on,
    driven by bench_ratelimit: decisions/s and latency against Redis."""
    port = free_port()
    conf = os.path.join(workdir, "ratelimit.conf")
    with open(conf, "w") as f:
        f.write("# mxguard bench: rate limits only (tests/bench/run.py)\n"
                "[milter]\nlog_level = notice\nuser = root\n"
                "[dns]\nnameserver = %s\n[spf]\nenabled = no\n[dkim]\nenabled = no\n"
                "[dmarc]\nenabled = no\n[rules]\nenabled = no\n[dnsbl]\nenabled = no\n"
                "[redis]\nserver = 127.0.0.1:%d\n[policy]\nlisten = inet:%d@127.0.0.1\n"
                "max_connections = 256\n\n" % (dns.address, redis.port, port))
        with open(os.path.join(HERE, "ratelimit.conf")) as rules:
            f.write(rules.read())
    policy = Policy(bins["mxguard-policy"], conf, port, workdir, name="policy-ratelimit")
    try:
        policy.start()
        outputs["ratelimit"] = run_bench("ratelimit", [
            bins["bench_ratelimit"], "-c", conf, "-m", str(args.connections),
            "-n", str(args.requests), "-p", "mxguard-policy=%d" % policy.pid,
            "-p", "redis=%d" % redis.pid])
    except (BenchFailed, HarnessError, subprocess.TimeoutExpired) as e:
        failures.append(str(e))
    finally:
        rc = policy.stop()
        if rc not in (0, None):
            failures.append("mxguard-policy (rate limits) exited %s after SIGTERM:\n%s"
                            % (rc, tail(policy.log_path)))


def engine_section(args, outputs):
    """results.md's part on mxguard alone: bench_engine's figures and where
    a message's time goes per check, or None when the engine did not run."""
    out = outputs.get("engine-1t")
    if not out:
        return None
    lines = ["## mxguard alone: the engine, no MTA (bench_engine)", "",
             "Every check on (as in the comparison, greylisting's triplets known), %d messages "
             "x %d passes, warm resolver cache:" % (args.messages, args.iterations), ""]
    for label in ("engine-1t", "engine-2t"):
        o = outputs.get(label)
        if o:
            lines.append("- %s thread%s: %s msg/s, %s ms CPU/msg, latency p50 %s / p99 %s ms"
                         % (label[7], "" if label[7] == "1" else "s",
                            figure(o, "rate:", r"([\d.]+)"), figure(o, "cpu:", r"([\d.]+)"),
                            figure(o, "latency:", r"p50 ([\d.]+)"),
                            figure(o, "latency:", r"p50 [\d.]+ ms, p99 ([\d.]+)")))
    lines += ["", "Where a message's time goes (1 thread; wall time in each check, DNS and "
              "Redis waits included):", "", "| check | ms/msg | share of the mean latency |",
              "|---|---|---|"]
    for m in re.finditer(r"^  (\S.*?)\s+([\d.-]+) ms/msg\s+([\d.-]+)%", out, re.M):
        lines.append("| %s | %s | %s%% |" % m.groups())
    return "\n".join(lines) + "\n"


def report(args, meta, corpus_note, outputs, seconds, load):
    sizes = sorted(meta["sizes"])
    line = "=" * 78
    print("\n" + line)
    print("mxguard benchmark report  %s" % time.strftime("%Y-%m-%d %H:%M:%S %z"))
    print(line)
    print("machine:   %s" % machine())
    print("commit:    %s" % commit())
    print("load:      %.2f before, %.2f after (1-minute load average; other work on the "
          "machine\n           moves the figures, the 1-thread latencies most)" % load)
    print("corpus:    %d messages, %s; %.1f KB mean, %.1f-%.1f KB, median %.1f KB"
          % (len(sizes), corpus_note, sum(sizes) / len(sizes) / 1024, sizes[0] / 1024,
             sizes[-1] / 1024, sizes[len(sizes) // 2] / 1024))
    print("           kinds: %s" % ", ".join("%s %d" % kv for kv in sorted(meta["kinds"].items(),
                                                                          key=lambda kv: -kv[1])))
    print("           forms: %s" % ", ".join("%s %d" % kv for kv in sorted(meta["forms"].items())))
    print("           %d DNS records for %d sender domains; DKIM rsa-sha256 (2048) and "
          "ed25519-sha256" % (len(meta["records"]), len(meta["domains"])))
    print("config:    engine: every check: SPF, DKIM, DMARC (treewalk, enforce), "
          "rules/*.rules,\n           two DNS lists, greylisting (triplet, delay %ds, learnt "
          "in the warm-up);\n           greylist and policy runs: SPF and greylisting; "
          "log_level notice" % GREYLIST_DELAY)

    # One summary row per benchmark that ran: (label, name, unit, CPU line).
    conns = args.connections
    table = (("engine-1t", "bench_engine, 1 thread", "msg/s", "cpu:", "msg"),
             ("engine-2t", "bench_engine, 2 threads", "msg/s", "cpu:", "msg"),
             ("content-default", "content, default rules", "msg/s", "cpu:", "msg"),
             ("content-sa", "content, + SA stock rules", "msg/s", "cpu:", "msg"),
             ("greylist-1t", "bench_greylist, 1 thread", "decisions/s", "cpu:", "dec"),
             ("greylist-4t", "bench_greylist, 4 threads", "decisions/s", "cpu:", "dec"),
             ("policy", "mxguard-policy, %d conns" % conns, "requests/s",
              "cpu of mxguard-policy:", "req"),
             ("ratelimit", "rate limits (10 rules), %d conns" % conns, "decisions/s",
              "cpu of mxguard-policy:", "req"))
    rows = []
    for label, name, unit, cpu_key, per in table:
        out = outputs.get(label)
        if out:
            rows.append((name, "%s %s" % (figure(out, "rate:", r"([\d.]+)"), unit),
                         "%s ms CPU/%s" % (figure(out, cpu_key, r"([\d.]+)"), per),
                         "p50 %s / p99 %s ms" % (figure(out, "latency:", r"p50 ([\d.]+)"),
                                                 figure(out, "latency:", r"p50 [\d.]+ ms, p99 ([\d.]+)"))))
    for label, _, _, _, _ in table:
        if label in outputs:
            print("\n-- %s\n%s" % (label, textwrap.indent(outputs[label].rstrip(), "   ")))
    print("\n" + line)
    print("summary")
    for r in rows:
        print("  %-30s %-22s %-20s %s" % r)
    if not rows:
        print("  (no benchmark ran)")
    print("  (%.0f s in all)" % seconds)
    print(line)


if __name__ == "__main__":
    sys.exit(main())
