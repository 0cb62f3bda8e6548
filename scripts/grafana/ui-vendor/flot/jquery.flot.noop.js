// Stand-in for a flot plugin of Grafana's public/vendor that neither the Go module nor npm
// has (stackpercent, fillbelow, dashes): only the legacy Angular graph panel sets its
// options, and they are ignored here.
