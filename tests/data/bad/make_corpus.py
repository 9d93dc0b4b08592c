#!/usr/bin/env python3
"""Writes the hostile observation corpus of this directory: each NAME.csv or NAME.jsonl
with its NAME.csv.expected or NAME.jsonl.expected. The files are committed; this script
documents how the binary and very large ones were made and rebuilds them all byte for byte
(fixed seeds). Run it from anywhere:
    python3 tests/data/bad/make_corpus.py

NAME.*.expected, one entry a line:
    accepted: N                  rows the parser must accept (every other row is an error)
    LINE:COLUMN: text            an error at that line and column whose reason contains text
    ...                          further errors, not listed, are allowed (binary garbage)
    # comment
Without `...` the listed errors are all the errors. COLUMN 0 means the whole row or file;
in CSV a column is a field number, in JSON Lines a character position in the line.
Localities known to the corpus: localities.csv (DM-001, DM-002, DM-003).
"""
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER = b"locality,time,kind,value,weight,source\n"


def good(loc="DM-001", day="2025-01-06", kind="incident.abduction", value="1", source="monitor-1"):
    return ("%s,%s,%s,%s,1,%s\n" % (loc, day, kind, value, source)).encode()


def write(name, content, accepted, errors, note=None, more=False):
    with open(os.path.join(HERE, name), "wb") as f:
        f.write(content)
    lines = []
    if note:
        lines += ["# " + line for line in note.splitlines()]
    lines.append("accepted: %d" % accepted)
    lines += ["%d:%d: %s" % e for e in errors]
    if more:
        lines.append("...")
    with open(os.path.join(HERE, name + ".expected"), "w") as f:
        f.write("\n".join(lines) + "\n")


def main():
    with open(os.path.join(HERE, "localities.csv"), "w") as f:
        f.write("id,name,region,population,neighbours\n"
                "DM-001,Riverside,DM/DM-1,1200,DM-002\n"
                "DM-002,Hilltop,DM/DM-1,800,DM-001;DM-003\n"
                "DM-003,Lakeshore,DM/DM-2,,DM-002\n")

    write("truncated_rows.csv",
          HEADER + good() +
          b"DM-001,2025-01-13,incident.abduction\n"
          b"DM-002,2025-01-13\n"
          b"DM-003\n"
          b"DM-002,2025-01-20,incident.abduction,2,1,monitor-1,extra\n" +
          good("DM-003", "2025-01-20") +
          b"DM-001,2025-02-03,incid",
          2, [(3, 4, "missing field"), (4, 3, "missing field"), (5, 2, "missing field"),
              (6, 7, "extra field"), (8, 4, "missing field")],
          note="rows cut short (the last one at end of file without a line end) and one too long")

    write("wrong_types.csv",
          HEADER +
          good(value="three") +
          good(day="yesterday") +
          b"DM-001,2025-01-06,incident.abduction,1,heavy,monitor-1\n"
          b"DM-001,2025-13-01,incident.abduction,1,1,monitor-1\n"
          b"DM-001,2025-01-07,incident.abduction,1,0,monitor-1\n"
          b"DM-001,2025-01-08,Incident.Abduction,1,1,monitor-1\n"
          b'DM-001,2025-01-09,incident.abduction,"1,5",1,monitor-1\n'
          b"DM-001,2025-01-10,incident.abduction,0x10,1,monitor-1\n"
          b"DM-001,2025-01-11T10:00:00+02:00,incident.abduction,1,1,monitor-1\n"
          b"DM-001,2025-01-12,incident.abduction,1,1,monitor 1\n"
          b"DM-001,1899-12-31,incident.abduction,1,1,monitor-1\n"
          b"DM-001,2025-01-13,incident.abduction, 12 ,1,monitor-1\n"
          b"DM-001,2025-01-14,incident,1,1,monitor-1\n",
          1, [(2, 4, "not a finite number"), (3, 2, "not an ISO 8601"), (4, 5, "weight 'heavy'"),
              (5, 2, "not an ISO 8601"), (6, 5, "not a number > 0"), (7, 3, "kind 'Incident.Abduction'"),
              (8, 4, "value '1,5'"), (9, 4, "value '0x10'"), (10, 2, "not an ISO 8601"),
              (11, 6, "source does not match"), (12, 2, "not an ISO 8601"),
              (14, 3, "kind 'incident'")],
          note="fields of the wrong type; line 13 (a number padded with blanks) is accepted")

    write("nan_inf.csv",
          HEADER + b"".join(good(day="2025-01-%02d" % (i + 1), value=v) for i, v in enumerate(
              ["nan", "NaN", "inf", "-inf", "Infinity", "1e999", "-1e999", "+nan"])) +
          b"DM-002,2025-01-06,incident.abduction,1,nan,monitor-1\n"
          b"DM-002,2025-01-07,incident.abduction,1,inf,monitor-1\n" +
          good("DM-003", value="1e300"),
          1, [(i, 4, "not a finite number") for i in range(2, 10)] +
             [(10, 5, "weight 'nan'"), (11, 5, "weight 'inf'")],
          note="non-finite values and weights; a huge finite value is accepted")

    write("negative_counts.csv",
          HEADER +
          good(value="-1") +
          good(day="2025-01-31", kind="school.dropouts", value="-3", source="emis") +
          good(day="2025-01-01", kind="school.enrolled", value="-0.5", source="emis") +
          good(kind="presence.report", value="-0.1", source="field-a") +
          good(kind="presence.report", value="1.01", source="field-b") +
          good(value="0") +
          good(kind="presence.report", value="1", source="field-c"),
          2, [(2, 4, "negative count"), (3, 4, "negative count"), (4, 4, "negative count"),
              (5, 4, "confidence outside 0..1"), (6, 4, "confidence outside 0..1")])

    write("future_dates.csv",
          HEADER + good(day="2999-01-01") + good(day="2999-12-31T23:59:59Z") +
          good(day="9999-12-31") + good(day="2025-01-06"),
          1, [(2, 2, "in the future"), (3, 2, "in the future"), (4, 2, "in the future")])

    write("unknown_localities.csv",
          HEADER + good("NOWHERE-1") + good("dm-001") + good("DM-001 ", day="2025-01-07") +
          good("") + good("DM/001") + good("' OR 1=1 --") + good("DM-0001"),
          1, [(2, 1, "unknown locality 'NOWHERE-1'"), (3, 1, "unknown locality 'dm-001'"),
              (5, 1, "empty locality"), (6, 1, "unknown locality 'DM/001'"),
              (7, 1, "unknown locality"), (8, 1, "unknown locality 'DM-0001'")],
          note="a locality padded with a blank (line 4) is trimmed and accepted")

    write("personal_child_name.csv",
          b"locality,time,kind,value,weight,source,child_name\n"
          b"DM-001,2025-01-06,incident.abduction,1,1,monitor-1,Someone\n",
          0, [(1, 7, "unknown column 'child_name'")],
          note="a column that could hold personal data refuses the whole file")
    write("personal_date_of_birth.csv",
          b"locality,date_of_birth,time,kind,value\n"
          b"DM-001,2015-04-01,2025-01-06,incident.abduction,1\n",
          0, [(1, 2, "unknown column 'date_of_birth'")])
    write("unknown_column.csv",
          b"locality,time,kind,value,comment\nDM-001,2025-01-06,incident.abduction,1,fine\n",
          0, [(1, 5, "unknown column 'comment'")])
    write("duplicate_column.csv",
          b"locality,time,kind,value,value\nDM-001,2025-01-06,incident.abduction,1,2\n",
          0, [(1, 5, "duplicate column 'value'")])
    write("missing_column.csv",
          b"locality,time,value\nDM-001,2025-01-06,1\n",
          0, [(1, 0, "missing column 'kind'")])

    write("invalid_utf8.csv",
          HEADER +
          b"DM-0\xc3\x28,2025-01-06,incident.abduction,1,1,monitor-1\n"
          b"DM-001,2025-01-06,incident.\xc0\xaf,1,1,monitor-1\n"
          b"DM-001,2025-01-06,incident.abduction,1,1,monitor-\xed\xa0\x80\n"
          b"DM-001,2025-01-06,incident.abduction,1,1,monitor-1\xe2\x82\n"
          b"DM-001,2025-01-06,incident.abduction,1,1,\xff\xfe\n"
          b"DM-001,2025-01-06,incident.abduction,1,1,monitor-\xc3\xa9\n" +
          good("DM-002"),
          1, [(2, 1, "malformed UTF-8"), (3, 3, "malformed UTF-8"), (4, 6, "malformed UTF-8"),
              (5, 6, "malformed UTF-8"), (6, 6, "malformed UTF-8"), (7, 6, "source does not match")],
          note="broken sequences, an overlong, a surrogate; well-formed but non-ASCII text (line 7)\n"
               "passes the UTF-8 check and fails the source pattern")
    write("invalid_utf8_header.csv",
          b"locality,ti\xffme,kind,value\n" + b"DM-001,2025-01-06,incident.abduction,1\n",
          0, [(1, 2, "header: malformed UTF-8")])
    write("control_chars.csv",
          HEADER +
          b"DM-001,2025-01-06,incident.abduction,1\x00,1,monitor-1\n"
          b"DM-001,2025-01-06\x1b[2J,incident.abduction,1,1,monitor-1\n"
          b"DM-001,2025-01-06,incident.abduction,1,1,monitor-1\x7f\n" + good("DM-002"),
          1, [(2, 4, "control character 0x00"), (3, 2, "control character 0x1B"),
              (4, 6, "control character 0x7F")],
          note="NUL, an escape sequence that would repaint a terminal, DEL")

    big = b"x" * (1 << 20)
    write("huge_field.csv",
          HEADER + b"DM-001,2025-01-06,incident.abduction,1,1," + big + b"\n" +
          b'DM-001,2025-01-07,"' + b"a" * 65536 + b'",1,1,monitor-1\n' + good("DM-002"),
          1, [(2, 6, "field longer than"), (3, 3, "field longer than")],
          note="a 1 MiB unquoted field and a 64 KiB quoted one")

    write("empty.csv", b"", 0, [(1, 0, "empty file")])
    write("blank_lines.csv", b"\n\n   \n\t\n", 0, [(1, 0, "empty file")],
          note="nothing but blank lines is as empty as no bytes")
    write("header_only.csv", HEADER, 0, [])
    write("header_only_no_newline.csv", b"locality,time,kind,value", 0, [])

    rng = random.Random(1)
    garbage = bytearray(rng.getrandbits(8) for _ in range(8192))
    # The first line holds no quote, so the reader's first complaint is fixed: the ELF
    # magic's 0x7F in the first field is a control character.
    cut = next(i for i, b in enumerate(garbage) if b in b"\n\r")
    garbage[:cut] = bytes(b for b in garbage[:cut] if b != ord('"'))
    write("binary_garbage.csv", b"\x7fELF\x02\x01\x01\x00" + bytes(garbage),
          0, [(1, 1, "header: control character 0x7F")],
          note="random bytes behind an ELF magic: the header is refused, nothing else is read")
    # No quotes: a quote opening a field would swallow the rest of the file, which
    # unterminated_quote.csv covers; here the last good row must survive.
    garbage = bytes(b for b in (rng.getrandbits(8) for _ in range(8192)) if b != ord('"'))
    write("binary_after_header.csv", HEADER + good() + garbage + b"\n" + good("DM-002"),
          2, [], more=True,
          note="random bytes between good rows: any number of errors, the good rows survive\n"
               "(the last one is on a line of its own after the garbage)")

    write("sql_fragments.csv",
          HEADER +
          b"DM-001'; DROP TABLE observations; --,2025-01-06,incident.abduction,1,1,monitor-1\n"
          b"DM-001,2025-01-06,incident.abduction'); DELETE FROM ingests;--,1,1,monitor-1\n"
          b"DM-001,2025-01-06,incident.abduction,1,1,monitor-1; DROP TABLE localities\n"
          b'DM-001,2025-01-06,incident.abduction,1,1,"x"");DROP TABLE observations;--"\n'
          b"DM-001,2025-01-06,incident.abduction,1 OR 1=1,1,monitor-1\n"
          b"DM-001,2025-01-06,incident.abduction,1,1,monitor-1--\n",
          1, [(2, 1, "unknown locality"), (3, 3, "does not match"), (4, 6, "source does not match"),
              (5, 6, "source does not match"), (6, 4, "not a finite number")],
          note="SQL in text fields is refused by the field patterns; line 7's source\n"
               "'monitor-1--' matches its pattern and is stored as text")

    write("crlf_bom_mix.csv",
          b"\xef\xbb\xbflocality,time,kind,value,weight,source\r\n" +
          good().replace(b"\n", b"\r\n") +
          good("DM-002") +
          good("DM-003").replace(b"\n", b"\r") +
          b"\xef\xbb\xbf" + good(day="2025-01-13").replace(b"\n", b"\r\n") +
          good("DM-002", day="2025-01-13", value="nan").replace(b"\n", b"\r\n") +
          b"\r\n" +
          good("DM-003", day="2025-01-13", value="2").replace(b"\n", b"\r\r\n") +
          good(day="2025-01-20", value="x"),
          4, [(5, 1, "unknown locality"), (6, 4, "not a finite number"), (10, 4, "not a finite number")],
          note="BOM and CRLF header; LF, CRLF and lone-CR rows; a BOM inside the file is not\n"
               "skipped (line 5); CR CR LF ends a line and adds a blank one (line 9)")

    write("unterminated_quote.csv",
          HEADER + good() +
          b'DM-001,2025-01-13,"incident.abduction,1,1,monitor-1\n' + good("DM-002") + good("DM-003"),
          1, [(3, 3, "unterminated quoted field")],
          note="a quote opened on line 3 runs to the end of the file and swallows lines 4-5")
    write("malformed_quotes.csv",
          HEADER +
          b'DM-001,2025-01-06,incident.abduction,1"2,1,monitor-1\n'
          b'DM-001,"2025-01-06"x,incident.abduction,1,1,monitor-1\n'
          b'"DM-002","2025-01-06","incident.abduction","1","1","monitor-1"\n',
          1, [(2, 4, "quote inside an unquoted field"), (3, 2, "unexpected text after a closing quote")])

    many = b",".join(b"c%d" % i for i in range(7, 5001))
    write("thousands_of_columns_header.csv",
          b"locality,time,kind,value,weight,source," + many + b"\n" +
          b"DM-001,2025-01-06,incident.abduction,1,1,monitor-1" + b",x" * 4994 + b"\n",
          0, [(1, 65, "header: more than 64 fields")])
    write("thousands_of_columns_row.csv",
          HEADER + b"DM-001,2025-01-06,incident.abduction,1,1,monitor-1" + b",x" * 4994 + b"\n" +
          good("DM-002"),
          1, [(2, 65, "more than 64 fields")])

    jsonl(rng)


def obj(loc="DM-001", time="2025-01-06", kind="incident.abduction", value="1", extra=""):
    return ('{"locality":"%s","time":"%s","kind":"%s","value":%s%s}\n'
            % (loc, time, kind, value, extra)).encode()


def jsonl(rng):
    """JSON Lines: the same rules per line; columns count characters of the line."""
    write("jsonl_personal_keys.jsonl",
          obj(extra=',"child_name":"Someone"') + obj("DM-002") +
          obj(extra=',"date_of_birth":"2015-04-01"'),
          1, [(1, 80, "unknown key 'child_name'"), (3, 80, "unknown key 'date_of_birth'")],
          note="a key that could hold personal data refuses its line")
    write("jsonl_wrong_types.jsonl",
          obj(value='"1"') + obj(time="2025-01-06", value="true") +
          b'{"locality":"DM-001","time":20250106,"kind":"incident.abduction","value":1}\n' +
          obj(extra=',"weight":"heavy"') + b'{"locality":null,"time":"2025-01-06","kind":"incident.abduction","value":1}\n' +
          obj(value="NaN") + obj(value="1e999") + obj(value="-1") +
          obj(kind="presence.report", value="1.5") + obj(time="2999-01-01") + obj("NOWHERE-1") +
          obj(value="2", extra=',"weight":null,"source":"monitor-1"'),
          1, [(1, 78, "value must be a JSON number"), (2, 78, "value must be a JSON number"),
              (3, 29, "time must be a JSON string"), (4, 89, "weight must be a JSON number"),
              (5, 13, "locality must be a JSON string"), (6, 78, "invalid JSON"),
              (7, 78, "value '1e999' is not a finite number"), (8, 78, "negative count"),
              (9, 75, "confidence outside 0..1"), (10, 29, "in the future"),
              (11, 13, "unknown locality 'NOWHERE-1'")],
          note="types are JSON's own: a number in quotes is refused; null means not given")
    write("jsonl_malformed.jsonl",
          b"\xef\xbb\xbf" + obj().replace(b"\n", b"\r\n") +
          b'{"locality":"DM-001","time":\n'
          b"[1,2]\n"
          b'"just a string"\n'
          b"null\n"
          + obj(time="2025-01-07").rstrip(b"\n") + b" x\n"
          b'{"locality":"DM-001","locality":"DM-002","time":"2025-01-06","kind":"incident.abduction","value":1}\n'
          b'{"locality":"DM-001","kind":"incident.abduction","value":1}\n'
          b'{"locality":"DM-0\xc3\x28","time":"2025-01-06","kind":"incident.abduction","value":1}\n'
          b'{"locality":"DM-001\\u0000","time":"2025-01-06","kind":"incident.abduction","value":1}\n'
          b"\n   \n" +
          obj(extra=',"source":"monitor-1\'; DROP TABLE observations; --"') +
          obj("DM-003", time="2025-01-08"),
          2, [(2, 29, "invalid JSON"), (3, 1, "expected a JSON object"), (4, 1, "expected a JSON object"),
              (5, 1, "expected a JSON object"), (6, 81, "invalid JSON"), (7, 22, "duplicate key 'locality'"),
              (8, 1, "missing key 'time'"), (9, 18, "malformed UTF-8"),
              (10, 13, "control character 0x00"), (13, 89, "source does not match")],
          note="BOM and CRLF on line 1 (accepted); lines 11-12 are blank")
    write("jsonl_huge_line.jsonl",
          obj(extra=',"source":"' + "x" * 70000 + '"') + obj("DM-002"),
          1, [(1, 0, "line longer than 65536 bytes")])
    write("jsonl_unterminated_string.jsonl",
          b'{"locality":"DM-001","time":"2025-01-06","kind":"incident.abduction","value":1,'
          b'"source":"' + b"x" * 60000 + b"\n" + obj("DM-002"),
          1, [(1, 60090, "invalid JSON")],
          note="a string left open over 60000 bytes: the error must stay short (it is logged and\n"
               "written beside the file), not quote the whole line")
    write("jsonl_deep_nesting.jsonl",
          b'{"locality":"DM-001","time":"2025-01-06","kind":"incident.abduction","value":' +
          b"[" * 30000 + b"]" * 30000 + b"}\n" + obj("DM-002"),
          1, [(1, 78, "value must be a JSON number")],
          note="an array nested 30000 deep, just under the line limit, where a number belongs")
    write("jsonl_empty.jsonl", b"", 0, [(1, 0, "empty file")])
    garbage = bytes(rng.getrandbits(8) for _ in range(8192))
    write("jsonl_binary_garbage.jsonl", obj() + garbage + b"\n" + obj("DM-002"), 2, [], more=True,
          note="random bytes between good lines: any number of errors, the good lines survive")


if __name__ == "__main__":
    main()
