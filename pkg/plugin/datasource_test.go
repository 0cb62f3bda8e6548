package plugin

import (
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/models"
)

// After Dispose no engine opens: a query that waited for a slot while Grafana replaced
// the instance would otherwise open one that nothing closes (holding the store's kept
// facts), so it gets an error saying to run it again.
func TestNoEngineAfterDispose(t *testing.T) {
	s, err := models.Load(backend.DataSourceInstanceSettings{})
	require.NoError(t, err)
	d := New(s)
	e, err := d.getEngine()
	require.NoError(t, err)
	require.NotNil(t, e)
	d.Dispose()
	e, err = d.getEngine()
	require.Nil(t, e)
	require.ErrorContains(t, err, "this data source instance was replaced")
}
