package scenarios

// JSONReport is a Report for programs (driver scenarios -json): every check with its
// outcome, the timings in milliseconds, and the verdict.
type JSONReport struct {
	OK        bool           `json:"ok"`
	Passed    int            `json:"passed"`
	Failed    int            `json:"failed"`
	Skipped   int            `json:"skipped"`
	Checks    []JSONCheck    `json:"checks"`
	Timings   []JSONTiming   `json:"timings"`
	Leader    string         `json:"leader"`
	NewLeader string         `json:"new_leader"`
	Started   string         `json:"started"`
	ElapsedMS int64          `json:"elapsed_ms"`
	Extra     map[string]any `json:"extra,omitempty"`
}

// JSONCheck is one Check of a JSONReport.
type JSONCheck struct {
	ID       string `json:"id"`
	Scenario int    `json:"scenario"`
	Name     string `json:"name"`
	Result   Result `json:"result"`
	Detail   string `json:"detail"`
	TookMS   int64  `json:"took_ms,omitempty"`
}

// JSONTiming is one Timing of a JSONReport.
type JSONTiming struct {
	Name string `json:"name"`
	MS   int64  `json:"ms"`
}

// JSON returns the report in its machine-readable form.
func (r Report) JSON() JSONReport {
	pass, fail, skip := r.Counts()
	j := JSONReport{OK: r.OK(), Passed: pass, Failed: fail, Skipped: skip, Checks: []JSONCheck{}, Timings: []JSONTiming{},
		Leader: r.Leader, NewLeader: r.NewLeader, ElapsedMS: r.Elapsed.Milliseconds()}
	if !r.Started.IsZero() {
		j.Started = r.Started.UTC().Format("2006-01-02T15:04:05.000Z07:00")
	}
	for _, c := range r.Checks {
		j.Checks = append(j.Checks, JSONCheck{ID: c.ID, Scenario: c.Scenario, Name: c.Name, Result: c.Result,
			Detail: c.Detail, TookMS: c.Took.Milliseconds()})
	}
	for _, t := range r.Timings {
		j.Timings = append(j.Timings, JSONTiming{Name: t.Name, MS: t.D.Milliseconds()})
	}
	return j
}
