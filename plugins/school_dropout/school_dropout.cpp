// school_dropout.cpp: exports the school_dropout indicator (see README.md for the method).
#include "school_dropout.hpp"

EWS_INDICATOR(ews::plugins::SchoolDropout)
