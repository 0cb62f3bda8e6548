package models_test

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
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

// The default facts directory: GF_PLUGIN_FACTS_DIR (Grafana's [plugin.<id>] facts_dir);
// else beside the plugins directory the plugin is installed in; else the system's
// temporary directory.
func TestDefaultFactsDir(t *testing.T) {
	data := t.TempDir()
	exe := filepath.Join(data, "plugins", "blueticks-whatsapp-datasource", "gpx_blueticks_linux_amd64")
	assert.Equal(t, filepath.Join(data, "blueticks-facts"), models.DefaultFactsDir(exe))
	info, err := os.Stat(filepath.Join(data, "blueticks-facts"))
	require.NoError(t, err)
	assert.Equal(t, os.FileMode(0o700), info.Mode().Perm())

	assert.Equal(t, kpi.DefaultFactsDir(), models.DefaultFactsDir(filepath.Join(data, "dist", "gpx_blueticks_linux_amd64")),
		"not in a plugins directory")
	assert.Equal(t, kpi.DefaultFactsDir(), models.DefaultFactsDir(""))

	t.Setenv(models.FactsDirEnv, "/srv/blueticks-facts")
	assert.Equal(t, "/srv/blueticks-facts", models.DefaultFactsDir(exe))
	t.Setenv(models.FactsDirEnv, "relative")
	assert.Equal(t, filepath.Join(data, "blueticks-facts"), models.DefaultFactsDir(exe), "a relative path is ignored")
}
