package storm

// Report is the JSON document cmd/storm prints.
type Report struct {
	SimNs      []int         `json:"sim_n"`
	RealN      int           `json:"real_n"`
	NC         float64       `json:"n_over_c_s"` // N/C of the capacity-limited runs
	SweepNCs   []float64     `json:"sweep_n_over_c_s"`
	Variants   []VariantDesc `json:"variants"`
	Sim        []Metrics     `json:"sim"`
	Sweep      []Metrics     `json:"sweep"` // at the largest simulated N
	Real       []Metrics     `json:"real"`
	ElapsedSec float64       `json:"elapsed_s"`
}

// VariantDesc describes a Variant in the report.
type VariantDesc struct {
	Name string `json:"name"`
	Desc string `json:"desc"`
	Real bool   `json:"real"` // also run with real Conns
}
