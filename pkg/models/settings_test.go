package models_test

import (
	"encoding/json"
	"fmt"
	"testing"

	"github.com/grafana/grafana-plugin-sdk-go/backend"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/kpi"
	"github.com/blueticks/blueticks-whatsapp-datasource/pkg/models"
)

const secret = "hash-key-7f3a9c-do-not-leak"

func TestSecretsNeverPrint(t *testing.T) {
	s, err := models.Load(backend.DataSourceInstanceSettings{
		JSONData:                json.RawMessage(`{"storePath":"/data/store"}`),
		DecryptedSecureJSONData: map[string]string{"hashKey": secret},
	})
	require.NoError(t, err)
	assert.Equal(t, secret, s.Secrets.HashKey, "the key is available to the code")
	for _, format := range []string{"%v", "%+v", "%#v", "%s"} {
		assert.NotContains(t, fmt.Sprintf(format, s), secret, format)
		assert.NotContains(t, fmt.Sprintf(format, *s), secret, format)
		assert.NotContains(t, fmt.Sprintf(format, s.Secrets), secret, format)
	}
	b, err := json.Marshal(s)
	require.NoError(t, err)
	assert.NotContains(t, string(b), secret)
}

func TestBadSettings(t *testing.T) {
	for js, want := range map[string]string{
		`{"queryTimeoutSeconds":-1}`:    "queryTimeoutSeconds = -1 is out of range",
		`{"memoryLimitMB":99999999999}`: "memoryLimitMB",
		`{"maxRows":"ten"}`:             "not valid",
		`{"threads":1000}`:              "threads = 1000 is out of range",
		`not json`:                      "not valid",
		`{"factsDir":"facts"}`:          `factsDir = "facts" is not an absolute path`,
	} {
		_, err := models.Load(backend.DataSourceInstanceSettings{JSONData: json.RawMessage(js),
			DecryptedSecureJSONData: map[string]string{"hashKey": secret}})
		require.Error(t, err, js)
		assert.Contains(t, err.Error(), want, js)
		assert.NotContains(t, err.Error(), secret)
	}
}

// factsDir: empty keeps the facts in the default directory, "none" does not keep them, an
// absolute path keeps them there.
func TestFactsDir(t *testing.T) {
	for js, want := range map[string]string{
		`{}`:                               kpi.DefaultFactsDir(),
		`{"factsDir":"  "}`:                kpi.DefaultFactsDir(),
		`{"factsDir":"none"}`:              "",
		`{"factsDir":" /var/lib/facts  "}`: "/var/lib/facts",
	} {
		s, err := models.Load(backend.DataSourceInstanceSettings{JSONData: json.RawMessage(js)})
		require.NoError(t, err, js)
		assert.Equal(t, want, s.KeptFactsDir(), js)
	}
	assert.Contains(t, kpi.DefaultFactsDir(), "blueticks-facts-")
}
