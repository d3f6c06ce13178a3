"""TimeTravel: every version of every text file of a project (see `service`)."""
