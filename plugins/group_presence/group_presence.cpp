// group_presence.cpp: exports the group_presence indicator (see README.md for the method).
#include "group_presence.hpp"

EWS_INDICATOR(ews::plugins::GroupPresence)
