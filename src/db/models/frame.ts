import { DataTypes, Model, type InferAttributes, type InferCreationAttributes, type Sequelize } from 'sequelize'

/**
 * One stored data frame (docs/protocol.md §4.1). Position, geo and hardware frames share
 * the table: `type` says which, `data` holds the validated fields.
 */
export class Frame extends Model<InferAttributes<Frame>, InferCreationAttributes<Frame>> {
  declare robotId: number
  declare frameId: string
  declare type: number
  declare data: Record<string, unknown>
  declare recordedAt: Date | null
  declare receivedAt: Date

  static initModel (sequelize: Sequelize): typeof Frame {
    const json = sequelize.getDialect() === 'postgres' ? DataTypes.JSONB : DataTypes.JSON
    return Frame.init({
      // (robot, frame id) is the key: frame ids are idempotent per robot.
      robotId: { type: DataTypes.INTEGER, allowNull: false, primaryKey: true },
      frameId: { type: DataTypes.STRING(64), allowNull: false, primaryKey: true },
      type: { type: DataTypes.SMALLINT, allowNull: false },
      data: { type: json, allowNull: false },
      recordedAt: { type: DataTypes.DATE, allowNull: true },
      receivedAt: { type: DataTypes.DATE, allowNull: false }
    }, { sequelize, tableName: 'frames', underscored: true, timestamps: false })
  }
}
