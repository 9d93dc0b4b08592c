// community_incidents.cpp: exports the community_incidents indicator (see README.md for the
// method).
#include "community_incidents.hpp"

EWS_INDICATOR(ews::plugins::CommunityIncidents)
