/*
 * sa_eval.h - two of SpamAssassin 4.0's header eval: tests, worked out as
 * its HeaderEval plugin does, for lib/rules.c:
 *
 *   check_for_shifted_date(min, max)  the Date: header's time minus the
 *       Received: headers' time, in hours, within [min, max) ('undef': no
 *       bound). DATE_IN_PAST_*, DATE_IN_FUTURE_*.
 *   check_outlook_message_id()  a Message-ID in Outlook's form whose
 *       time token fits neither the Date: nor the Received: time.
 *       MSGID_OUTLOOK_INVALID.
 *
 * Dates are read as Util::parse_rfc822_date reads them (named zones,
 * two- and three-digit years, out-of-range fields fudged, years forced
 * into 1970..2037). Texts are what SpamAssassin's get() gives (values
 * decoded, unfolded, a newline after each). No Unicode semantics: \s, \d
 * and \b are ASCII here.
 *
 * Pure functions over caller's buffers; nothing is kept between calls
 * except the regexes, compiled once (thread-safe). Never fails: input
 * that cannot be read is "no date" (and so, as in SpamAssassin, no hit).
 */
#ifndef MXG_SA_EVAL_H
#define MXG_SA_EVAL_H

#include <stdbool.h>
#include <stddef.h>

enum sa_eval_fn {
	SA_EVAL_NONE,
	SA_EVAL_SHIFTED_DATE,
	SA_EVAL_OUTLOOK_MSGID,
};

/* A parsed eval: test this module runs. */
struct sa_eval_call {
	enum sa_eval_fn fn;
	bool has_min, has_max;	/* false: 'undef' */
	double min_hours, max_hours;
};

/* Reads "eval:NAME(ARGS)" (text after the header rule's name, trailing
 * white space allowed). True, with *call filled, only for
 * check_for_shifted_date with two arguments, each a number or 'undef'
 * (quoted with ' or ", or bare), and check_outlook_message_id with none;
 * false for anything else, which stays unknown. */
bool sa_eval_parse(const char *text, struct sa_eval_call *call);

/* Util::parse_rfc822_date over len bytes of s: true with *out (seconds
 * since the epoch, never negative) when a date is found. */
bool sa_date_parse(const char *s, size_t len, long long *out);

/* _check_date_diff: seconds from the Received: time closest to the
 * message's date to that date. dates: the Resent-Date values, then the
 * Date values (the first one that parses is the date); received: get(
 * 'Received'), one header a line. 0 when there is no date or no
 * Received: time, as in SpamAssassin. */
long long sa_date_diff(const char *const *dates, size_t ndates,
    const char *received, size_t received_len);

/* check_for_shifted_date's verdict for a diff from sa_date_diff. */
bool sa_shifted_date_hits(const struct sa_eval_call *call, long long diff);

/* check_outlook_message_id over get('MESSAGEID'), get('Date') and
 * get('Received') (NULL, 0 for a missing header). */
bool sa_outlook_msgid_hits(const char *msgid, size_t msgid_len,
    const char *date, size_t date_len, const char *received,
    size_t received_len);

#endif
