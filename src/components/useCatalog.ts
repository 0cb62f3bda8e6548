import { useEffect, useState } from 'react';

import type { DataSource } from '../datasource';
import { DimensionDef, MetricDef } from '../types';

export interface Catalog {
  metrics: MetricDef[];
  dimensions: DimensionDef[];
  loading: boolean;
  error?: string;
}

/** A message a user can read from whatever a failed resource call threw. */
export function errorMessage(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { data?: { message?: string; error?: string }; message?: string; statusText?: string };
    return e.data?.message ?? e.data?.error ?? e.message ?? e.statusText ?? 'unknown error';
  }
  return String(err);
}

/** Loads the metric and dimension catalogs from the backend resources. */
export function useCatalog(datasource: DataSource): Catalog {
  const [catalog, setCatalog] = useState<Catalog>({ metrics: [], dimensions: [], loading: true });

  useEffect(() => {
    let cancelled = false;
    Promise.all([datasource.getMetrics(), datasource.getDimensions()])
      .then(([metrics, dimensions]) => {
        if (!cancelled) {
          setCatalog({ metrics, dimensions, loading: false });
        }
      })
      .catch((err) => {
        if (!cancelled) {
          setCatalog({ metrics: [], dimensions: [], loading: false, error: errorMessage(err) });
        }
      });
    return () => {
      cancelled = true;
    };
  }, [datasource]);

  return catalog;
}
