"""Every Catch2 test case is registered with CTest as a test of its own. A test name that
CMake's list syntax cannot carry silently breaks that: an unbalanced bracket folds the cases
after it into a single entry that runs nothing, and a ';' cuts the name so that the entry
matches no case and passes without running one. This test catches both."""
import os
import subprocess

from harness import BUILD, check

UNIT = os.path.join(BUILD, "tests", "ews_unit_tests")


def main():
    # Catch2 v2 exits with the number of test cases listed, so the status is no error.
    names = subprocess.run([UNIT, "--list-test-names-only"], capture_output=True,
                           text=True).stdout.splitlines()
    names = [n.strip() for n in names if n.strip()]
    listed = subprocess.run(["ctest", "--test-dir", BUILD, "-N"], capture_output=True, text=True,
                            check=True).stdout.splitlines()
    registered = [line.split(":", 1)[1].strip() for line in listed
                  if line.strip().startswith("Test") and "#" in line]
    unit = [r for r in registered if not r.startswith("integration.")]
    check(len(names) > 100, "the unit binary lists %d test cases" % len(names))
    missing = sorted(set(names) - set(unit))
    check(not missing, "every unit test case is a CTest test of its own; missing: %s" % missing[:5])
    check(len(unit) == len(names), "%d CTest unit tests for %d test cases" % (len(unit), len(names)))
    print("%d unit test cases, each registered with CTest" % len(names))


if __name__ == "__main__":
    main()
